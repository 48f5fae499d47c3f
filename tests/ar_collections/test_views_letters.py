"""The print queue: dunning letters written and waiting for the post."""

from __future__ import annotations

import datetime as dt
import html as html_text
import re
from decimal import Decimal
from urllib.parse import urljoin

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ar_collections.models import (
    ActionStatus,
    Channel,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    StepAction,
    TimelineEventInvoice,
)
from ar_collections.views import PAGE_SIZE
from customers.models import CollectorAbsence, EventKind, TimelineEvent

TODAY = dt.date(2025, 8, 5)
NOW = dt.datetime(2025, 8, 5, 9, 0, tzinfo=dt.UTC)
HTMX = {"HX-Request": "true"}
QUEUE = reverse("collections:letters")
PRINTED = reverse("collections:letters_printed")
PDF = b"%PDF-1.4\n% a dunning letter\n"
pytestmark = pytest.mark.usefixtures("_frozen_now")


@pytest.fixture
def _frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def make_letter(db, make_invoice):
    """make_letter(customer) → a firm letter of the prompt ladder, written today
    (its PDF in the test's media folder) and not printed yet, listing one open
    invoice (paid: paid since)."""

    def make(customer, *, channel=Channel.LETTER, status=ActionStatus.DONE, pdf=True,
             printed_at=None, paid=False) -> DunningAction:
        run, _ = DunningRun.objects.get_or_create(run_date=TODAY)
        cycle, _ = DunningCycle.objects.get_or_create(
            customer=customer, closed_on=None, defaults={"number": 1, "opened_on": TODAY}
        )
        step = DunningStep.objects.get(policy__segment="prompt", action=StepAction.LETTER)
        letter = DunningAction.objects.create(
            run=run, cycle=cycle, customer=customer, step=step, status=status, channel=channel,
            planned_on=TODAY, pay_by=TODAY + dt.timedelta(days=10), done_at=timezone.now(),
            recipient_address="Main Street 1, 10115 Berlin", printed_at=printed_at,
        )
        invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), paid_on=TODAY if paid else None)
        DunningActionInvoice.objects.create(action=letter, invoice=invoice, open_amount=invoice.total_amount,
                                            currency=invoice.currency)
        if pdf:
            letter.letter_pdf.save(f"dunning-{letter.pk}.pdf", ContentFile(PDF))
        return letter

    return make


@pytest.fixture
def letter(customer, make_letter) -> DunningAction:
    return make_letter(customer)


def printed(*letters) -> list:
    return [DunningAction.objects.get(pk=x.pk).printed_at for x in letters]


def download_url(letter) -> str:
    return reverse("collections:letter_download", args=[letter.pk])


# --- The queue ----------------------------------------------------------------------


def test_the_queue_lists_written_letters_not_yet_printed(
    client, collector, make_customer, make_letter
):
    waiting = make_letter(make_customer(name="Waiting Ltd"))
    make_letter(make_customer(name="Printed Ltd"), printed_at=NOW)
    make_letter(make_customer(name="Emailed Ltd"), channel=Channel.EMAIL, pdf=False)
    make_letter(make_customer(name="Failed Ltd"), status=ActionStatus.FAILED, pdf=False)
    # Paid before it went to the post: it would ask for money already received.
    make_letter(make_customer(name="Paid Since Ltd"), paid=True)
    client.force_login(collector)

    response = client.get(QUEUE)

    html = response.content.decode()
    assert [x.pk for x in response.context["letters"]] == [waiting.pk]
    assert "Waiting Ltd" in html and "Main Street 1, 10115 Berlin" in html
    for name in ["Printed Ltd", "Emailed Ltd", "Failed Ltd", "Paid Since Ltd"]:
        assert name not in html
    assert download_url(waiting) in html
    assert f'action="{PRINTED}"' in html and f'hx-post="{PRINTED}"' in html


def test_a_collector_sees_the_letters_of_their_accounts_and_a_manager_all(
    client, collector, other_collector, manager, make_customer, make_letter
):
    mine = make_letter(make_customer())
    ottos = make_letter(make_customer(collector=other_collector))

    client.force_login(collector)
    response = client.get(QUEUE)
    assert [x.pk for x in response.context["letters"]] == [mine.pk]
    # The collector is told the queue is theirs, not the team's.
    said = "Dunning letters, invoice copies and statements to your accounts written"
    assert said in response.content.decode()
    client.force_login(manager)
    response = client.get(QUEUE)
    assert {x.pk for x in response.context["letters"]} == {mine.pk, ottos.pk}
    assert "to your accounts" not in response.content.decode()


def test_a_collector_covering_for_an_absent_colleague_sees_their_letters_too(
    client, collector, other_collector, make_customer, make_letter
):
    mine = make_letter(make_customer())
    ottos = make_letter(make_customer(collector=other_collector))
    CollectorAbsence.objects.create(user=other_collector, stand_in=collector, recorded_by=other_collector,
                                    starts_on=TODAY, ends_on=TODAY)

    client.force_login(collector)
    response = client.get(QUEUE)

    assert {x.pk for x in response.context["letters"]} == {mine.pk, ottos.pk}


def test_viewers_may_not_open_the_print_queue(client, viewer):
    client.force_login(viewer)

    assert client.get(QUEUE).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in_for_the_print_queue(client):
    response = client.get(QUEUE)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_the_queue_says_which_invoices_a_letter_asks_for_were_paid_since(
    client, collector, customer, make_letter
):
    """A part payment since the letter was written leaves it in the queue (it
    still asks for money), saying what changed, for whoever posts it."""
    from ar_collections.workspace import payment_record

    letter = make_letter(customer)
    invoice = letter.lines.get().invoice
    payment_record(customer=customer, amount=Decimal("40.00"), currency=invoice.currency, received_on=TODAY,
                   allocations=[(invoice, Decimal("40.00"))], reference="BANK-7", actor=collector)
    client.force_login(collector)

    page = " ".join(client.get(QUEUE).content.decode().split())

    assert f"Paid since it was written: {invoice.number} part paid. Check it still should go." in page


def test_the_queue_says_which_invoices_a_letter_asks_for_were_paused_since(
    client, collector, customer, make_letter, make_invoice
):
    """A promise or a dispute since the letter was written: posting it would
    demand what the collector agreed to wait for. A dispute on an invoice it
    does not list says nothing."""
    from ar_collections import workspace

    letter = make_letter(customer)
    invoice = letter.lines.get().invoice
    # It asks for another invoice too: one asking only for what a promise
    # holds leaves the queue (workspace.letters_withdraw_held).
    asked = make_invoice(customer, issued=dt.date(2025, 6, 1))
    DunningActionInvoice.objects.create(action=letter, invoice=asked, open_amount=asked.total_amount,
                                        currency=asked.currency)
    other = make_invoice(customer, issued=dt.date(2025, 6, 1))
    # For all it owes: a promise pauses only what it pays in full.
    workspace.promise_record(customer=customer, actor=collector, amount=invoice.open_amount,
                             promised_on=TODAY + dt.timedelta(days=7), invoices=[invoice], on=TODAY)
    workspace.dispute_open(customer=customer, actor=collector, invoice=other, reason="price",
                           description="Billed twice", on=TODAY)
    client.force_login(collector)

    page = " ".join(client.get(QUEUE).content.decode().split())

    assert (f"Paused since it was written: {invoice.number} (promise to pay). Posting it would ask for what "
            "is on hold; check it still should go.") in page


def test_the_queue_says_when_a_letter_s_pay_by_date_has_passed(client, collector, customer, make_letter):
    letter = make_letter(customer)
    DunningAction.objects.filter(pk=letter.pk).update(pay_by=TODAY - dt.timedelta(days=1))
    client.force_login(collector)

    page = " ".join(client.get(QUEUE).content.decode().split())

    assert "It asks for payment by 4 Aug 2025, which has passed." in page
    assert ("Withdraw it rather than post it: the next step of the account's ladder then follows in its own "
            "time.") in page


# The prompt payers' policy leaves 5 days between contacts: a letter asking to
# be paid sooner than that leaves the customer less time, once the post has
# brought it, than the policy leaves between two reminders.
@pytest.mark.parametrize(("left", "said"), [
    (0, "It asks for payment by 5 Aug 2025, today: too soon for a letter still to be posted."),
    (1, "It asks for payment by 6 Aug 2025, tomorrow: too soon for a letter still to be posted."),
    (4, "It asks for payment by 9 Aug 2025, in 4 days: too soon for a letter still to be posted."),
])
def test_the_queue_warns_of_a_letter_whose_pay_by_date_is_too_near_to_post_it(
    client, collector, customer, make_letter, left, said
):
    letter = make_letter(customer)
    DunningAction.objects.filter(pk=letter.pk).update(pay_by=TODAY + dt.timedelta(days=left))
    client.force_login(collector)

    page = " ".join(client.get(QUEUE).content.decode().split())
    form = " ".join(client.get(withdraw_url(letter)).content.decode().split())

    advice = ("Withdraw it rather than post it: the next step of the account's ladder then follows in its "
              "own time.")
    assert f"{said} {advice}" in page
    assert said in form


def test_the_queue_does_not_warn_of_a_letter_leaving_the_policy_s_gap_to_pay(
    client, collector, customer, make_letter
):
    letter = make_letter(customer)
    DunningAction.objects.filter(pk=letter.pk).update(pay_by=TODAY + dt.timedelta(days=5))
    client.force_login(collector)

    page = " ".join(client.get(QUEUE).content.decode().split())

    assert "It asks for payment by" not in page and "Withdraw it rather" not in page


@pytest.mark.parametrize("rows", [2, 20])
def test_the_print_queue_costs_the_same_number_of_queries_for_2_or_20_letters(
    client, collector, make_customer, make_contact, make_letter, django_assert_num_queries, rows
):
    for _ in range(rows):
        customer = make_customer()
        letter = make_letter(customer)
        DunningAction.objects.filter(pk=letter.pk).update(recipient=make_contact(customer))
    client.force_login(collector)

    # session, user, role groups, permissions (2), the absences in force (whose
    # accounts this collector covers for), count, letters with customer, step,
    # its policy and recipient, their invoices paid since, their invoices and
    # the pauses since; and the paper copies and statements, counted and listed
    # with the letters in one queue
    with django_assert_num_queries(13):
        response = client.get(QUEUE)

    assert len(response.context["letters"]) == rows


# --- Pages ---------------------------------------------------------------------------------


def link(response, rel: str, *, shown_at: str = QUEUE) -> str | None:
    """The URL a page's "next" or "prev" link leads to (its href, unescaped),
    as the browser reads it on the page at `shown_at`."""
    found = re.search(rf'<a href="([^"]*)" rel="{rel}"', response.content.decode())
    return urljoin(shown_at, html_text.unescape(found.group(1))) if found else None


def posts_to(response) -> str:
    """Where the page's "Mark printed" form posts, with htmx and without (the same URL)."""
    form = re.search(rf'<form method="post" action="({PRINTED}[^"]*)"[^>]*hx-post="([^"]*)"',
                     response.content.decode())
    assert form.group(1) == form.group(2)
    return urljoin(QUEUE, html_text.unescape(form.group(1)))


def listed(response) -> list[int]:
    return [x.pk for x in response.context["letters"]]


def at(url: str) -> dict:
    """The headers of an htmx request from the page at `url`."""
    return {**HTMX, "HX-Current-URL": f"http://testserver{url}"}


@pytest.fixture
def queue(collector, make_customer, make_letter) -> list[int]:
    """Two pages of letters and five more, their ids in the queue's order (written, then id)."""
    return [make_letter(make_customer(name=f"Customer {n:03d}")).pk for n in range(2 * PAGE_SIZE + 5)]


def test_letters_printed_before_the_next_page_is_opened_do_not_push_others_past_it(client, collector, queue):
    """Printed from the first page (or by a colleague, or in another tab), a
    letter leaves the queue: the next page must still start right after the
    first page's last letter, or the letters moved up into the gap are never
    shown to anyone and never posted."""
    client.force_login(collector)
    first = client.get(QUEUE)
    assert listed(first) == queue[:PAGE_SIZE]
    client.post(posts_to(first), {"letters": queue[:5]}, headers=at(QUEUE))

    second = client.get(link(first, "next"), headers=HTMX)

    assert listed(second) == queue[PAGE_SIZE:2 * PAGE_SIZE]
    third = client.get(link(second, "next"), headers=HTMX)
    assert listed(third) == queue[2 * PAGE_SIZE:]
    assert link(third, "next") is None
    # Five fewer before page two: the first page, from the top, with no way further back.
    back = client.get(link(second, "prev"))
    assert listed(back) == queue[5:PAGE_SIZE + 5]
    assert link(back, "prev") is None


def test_with_htmx_marking_printed_on_a_later_page_redraws_that_page_with_the_letters_moved_up(
    client, collector, queue
):
    """The collector stays where they were: the letters of the next page that
    moved up into the gap, not the first page under an address that says page two."""
    client.force_login(collector)
    second_url = link(client.get(QUEUE), "next")
    second = client.get(second_url, headers=HTMX)

    redrawn = client.post(posts_to(second), {"letters": queue[PAGE_SIZE:2 * PAGE_SIZE - 1]},
                          headers=at(second_url))

    assert redrawn.status_code == 200
    assert listed(redrawn) == queue[2 * PAGE_SIZE - 1:]
    assert link(redrawn, "next") is None
    assert f"{PAGE_SIZE - 1} letters marked as printed." in redrawn.content.decode()
    # Its form posts from the same place again, and going back leads to the first page.
    assert posts_to(redrawn) == posts_to(second)
    assert listed(client.get(link(redrawn, "prev"))) == queue[:PAGE_SIZE]


def test_without_htmx_marking_printed_on_a_later_page_comes_back_to_that_page(client, collector, queue):
    client.force_login(collector)
    second_url = link(client.get(QUEUE), "next")
    second = client.get(second_url)

    response = client.post(posts_to(second), {"letters": queue[PAGE_SIZE:2 * PAGE_SIZE]})

    assert response.status_code == 302
    # At the box of the letter that moved up: it takes the keyboard.
    assert response.url == f"{second_url}#letter-{queue[2 * PAGE_SIZE]}"
    assert listed(client.get(response.url)) == queue[2 * PAGE_SIZE:]


def test_marking_every_letter_of_the_last_page_printed_says_the_rest_is_printed(client, collector, queue):
    client.force_login(collector)
    third_url = link(client.get(link(client.get(QUEUE), "next")), "next")
    third = client.get(third_url)

    redrawn = client.post(posts_to(third), {"letters": queue[2 * PAGE_SIZE:]}, headers=at(third_url))

    html = " ".join(redrawn.content.decode().split())
    assert listed(redrawn) == []
    assert f"{2 * PAGE_SIZE} documents to print" in html
    assert "Nothing further down the list: the rest has left the queue." in html
    assert "Nothing waits to be printed." not in html


def test_a_rejected_form_without_htmx_keeps_its_place_and_its_page_links_lead_to_the_queue(
    client, collector, queue
):
    """Without htmx the rejected form shows at the form's own address: links
    relative to it would ask the form for a page, which it does not give."""
    client.force_login(collector)
    second_url = link(client.get(QUEUE), "next")
    form_url = posts_to(client.get(second_url))

    response = client.post(form_url, {})

    assert response.status_code == 422
    assert listed(response) == queue[PAGE_SIZE:2 * PAGE_SIZE]
    assert listed(client.get(link(response, "next", shown_at=form_url))) == queue[2 * PAGE_SIZE:]
    assert listed(client.get(link(response, "prev", shown_at=form_url))) == queue[:PAGE_SIZE]
    assert printed(*DunningAction.objects.filter(pk__in=queue)) == [None] * len(queue)


@pytest.mark.parametrize("position", ["after=nonsense", "before=WzFd"])
def test_a_page_position_the_queue_did_not_hand_out_is_a_bad_request_and_marks_nothing(
    client, collector, letter, position
):
    client.force_login(collector)

    before = letter_state(letter)

    shown = client.get(f"{QUEUE}?{position}")
    marked = client.post(f"{PRINTED}?{position}", {"letters": [letter.pk]}, headers=HTMX)
    withdrawing = client.get(f"{withdraw_url(letter)}?{position}")
    withdrawn = client.post(f"{withdraw_url(letter)}?{position}", {"reason": "Paid"})

    for response in (shown, marked, withdrawing, withdrawn):
        assert response.status_code == 400
        assert "is not a position in this list" in response.content.decode()
    assert letter_state(letter) == before


# --- Downloading -------------------------------------------------------------------


def test_the_letter_downloads_as_a_pdf(client, collector, letter):
    client.force_login(collector)

    response = client.get(download_url(letter))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="dunning-{letter.pk}.pdf"'
    assert b"".join(response.streaming_content) == PDF


@pytest.mark.parametrize("intruder", ["other_collector", "viewer"])
def test_people_who_may_not_act_on_the_account_may_not_download_its_letter(
    client, letter, request, intruder
):
    client.force_login(request.getfixturevalue(intruder))

    assert client.get(download_url(letter)).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in_for_a_letter(client, letter):
    response = client.get(download_url(letter))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_letter_whose_file_is_gone_is_not_found(client, collector, letter):
    letter.letter_pdf.storage.delete(letter.letter_pdf.name)
    client.force_login(collector)

    assert client.get(download_url(letter)).status_code == 404


def test_an_action_without_a_letter_is_not_found(client, collector, customer, make_letter):
    email = make_letter(customer, channel=Channel.EMAIL, pdf=False)
    client.force_login(collector)

    assert client.get(download_url(email)).status_code == 404


def test_downloading_only_reads(client, collector, letter):
    client.force_login(collector)

    assert client.post(download_url(letter)).status_code == 405


# --- Marking printed -------------------------------------------------------------


def test_the_last_letter_marked_printed_leads_back_to_the_list(client, collector, make_customer, make_letter):
    """No letter is left to go on to: the queue opens at the list, which says so."""
    letter = make_letter(make_customer())
    client.force_login(collector)

    response = client.post(PRINTED, {"letters": [letter.pk]})

    assert (response.status_code, response.url) == (302, f"{QUEUE}#letters")


def test_marking_letters_printed_takes_them_out_of_the_queue(
    client, collector, make_customer, make_letter
):
    first, second, left = (make_letter(make_customer()) for _ in range(3))
    client.force_login(collector)

    response = client.post(PRINTED, {"letters": [first.pk, second.pk]})

    assert response.status_code == 302
    assert response.url == f"{QUEUE}#letter-{left.pk}"
    assert printed(first, second, left) == [NOW, NOW, None]
    page = client.get(QUEUE)
    assert [x.pk for x in page.context["letters"]] == [left.pk]
    assert "2 letters marked as printed." in page.content.decode()


def test_a_letter_marked_printed_is_posted_on_its_account_s_timeline(
    client, collector, customer, make_contact, make_letter
):
    letter = make_letter(customer)
    anna = make_contact(customer, name="Anna Clerk")
    DunningAction.objects.filter(pk=letter.pk).update(recipient=anna)
    client.force_login(collector)

    client.post(PRINTED, {"letters": [letter.pk]})
    client.post(PRINTED, {"letters": [letter.pk]})  # again, from a page not yet refreshed

    [event] = TimelineEvent.objects.filter(customer=customer, summary__contains="posted")
    assert event.summary == "Firm reminder letter to Anna Clerk posted on 5 Aug 2025"
    assert (event.actor, event.kind, event.details["action"]) == (collector, EventKind.DUNNING, letter.pk)
    assert TimelineEventInvoice.objects.filter(event=event, invoice=letter.lines.get().invoice).exists()
    page = client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    assert "Firm reminder letter to Anna Clerk posted on 5 Aug 2025" in page


def test_with_htmx_the_queue_comes_back_without_the_printed_letters(
    client, collector, make_customer, make_letter
):
    done, left = make_letter(make_customer(name="Done Ltd")), make_letter(make_customer(name="Left Ltd"))
    client.force_login(collector)

    response = client.post(PRINTED, {"letters": [done.pk]}, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="letters"')
    assert "<html" not in html
    assert "Left Ltd" in html and "Done Ltd" not in html
    assert "1 letter marked as printed." in html and 'hx-swap-oob="innerHTML"' in html
    assert printed(done, left) == [NOW, None]


def test_a_letter_printed_already_keeps_its_first_date(client, collector, customer, make_letter):
    earlier = NOW - dt.timedelta(days=1)
    letter = make_letter(customer, printed_at=earlier)
    client.force_login(collector)

    response = client.post(PRINTED, {"letters": [letter.pk]})

    assert response.status_code == 422
    assert "left the print queue already" in response.content.decode()
    assert printed(letter) == [earlier]


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize(
    ("data", "message"),
    [({}, "Tick the documents you printed."), ({"letters": ["x"]}, "not a document of the print queue"),
     ({"letters": [999999]}, "left the print queue already")],
    ids=["nothing-ticked", "not-a-number", "unknown-letter"],
)
def test_bad_input_marks_nothing_and_says_why(client, collector, letter, headers, data, message):
    client.force_login(collector)

    response = client.post(PRINTED, data, headers=headers)

    html = response.content.decode()
    assert response.status_code == 422
    assert message in html
    assert "Nothing was marked." in html
    assert ("<html" in html) == (not headers)
    assert printed(letter) == [None]


def test_a_letter_of_another_collectors_account_is_refused_and_nothing_is_marked(
    client, collector, other_collector, make_customer, make_letter
):
    mine, ottos = make_letter(make_customer()), make_letter(make_customer(collector=other_collector))
    client.force_login(collector)

    response = client.post(PRINTED, {"letters": [mine.pk, ottos.pk]})

    assert response.status_code == 403
    assert printed(mine, ottos) == [None, None]


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_viewers_may_not_mark_letters_printed(client, viewer, letter, headers):
    client.force_login(viewer)

    assert client.post(PRINTED, {"letters": [letter.pk]}, headers=headers).status_code == 403
    assert printed(letter) == [None]


def test_a_user_without_a_role_may_not_mark_letters_printed(client, letter):
    client.force_login(User.objects.create_user("nobody"))

    assert client.post(PRINTED, {"letters": [letter.pk]}).status_code == 403
    assert printed(letter) == [None]


def test_a_manager_may_mark_any_letter_printed(client, manager, letter):
    client.force_login(manager)

    client.post(PRINTED, {"letters": [letter.pk]})

    assert printed(letter) == [NOW]


def test_anonymous_visitors_are_sent_to_log_in_and_nothing_is_marked(client, letter):
    response = client.post(PRINTED, {"letters": [letter.pk]})

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert printed(letter) == [None]


def test_marking_printed_needs_a_post(client, collector, letter):
    client.force_login(collector)

    assert client.get(PRINTED, {"letters": [letter.pk]}).status_code == 405
    assert printed(letter) == [None]


def test_marking_printed_without_the_csrf_token_is_refused(collector, letter):
    client = Client(enforce_csrf_checks=True)
    client.force_login(collector)

    response = client.post(PRINTED, {"letters": [letter.pk]}, headers=HTMX)

    assert response.status_code == 403
    assert printed(letter) == [None]


# --- Withdrawing a letter from the queue ------------------------------------------------


def withdraw_url(letter) -> str:
    return reverse("collections:letter_withdraw", args=[letter.pk])


def letter_state(letter) -> tuple:
    from customers.models import TimelineEvent

    letter = DunningAction.objects.get(pk=letter.pk)
    return (letter.status, letter.skip_reason, letter.reviewed_by_id, letter.printed_at,
            TimelineEvent.objects.filter(customer=letter.customer).count())


def test_a_letter_paused_since_it_was_written_can_be_withdrawn_from_the_queue(
    client, collector, customer, make_letter
):
    from ar_collections import workspace

    letter = make_letter(customer)
    # Of part of what it asks for: a dispute of all of it withdraws the letter
    # at once (workspace.letters_withdraw_held).
    workspace.dispute_open(customer=customer, actor=collector, invoice=letter.lines.get().invoice,
                           reason="price", description="Billed twice", on=TODAY, amount=Decimal("40.00"))
    client.force_login(collector)

    page = client.get(QUEUE).content.decode()
    form = client.get(withdraw_url(letter)).content.decode()

    assert f'href="{withdraw_url(letter)}"' in page
    assert "<html" in form and customer.name in form
    assert f'action="{withdraw_url(letter)}"' in form and 'method="post"' in form
    assert "Paused since it was written" in form


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_withdrawing_a_letter_takes_it_out_of_the_queue_and_says_why_on_the_timeline(
    client, collector, customer, make_customer, make_letter, headers
):
    from customers.models import TimelineEvent

    letter, left = make_letter(customer), make_letter(make_customer(name="Left Ltd"))
    client.force_login(collector)

    response = client.post(withdraw_url(letter), {"reason": "They disputed it on the phone"}, headers=headers)

    letter.refresh_from_db()
    assert (letter.status, letter.skip_reason, letter.reviewed_by, letter.printed_at) == (
        ActionStatus.SKIPPED, "withdrawn from the print queue: They disputed it on the phone", collector, None
    )
    event = TimelineEvent.objects.filter(customer=customer).latest("pk")
    assert event.actor == collector
    assert event.summary == ("Letter of 5 Aug 2025 withdrawn from the print queue by carla: "
                             "They disputed it on the phone")
    assert event.details["before"] == {"status": "done"} and event.details["after"] == {"status": "skipped"}
    if headers:
        html = response.content.decode()
        assert response.status_code == 200 and html.lstrip().startswith('<section id="letters"')
        assert f'href="{withdraw_url(left)}"' in html and f'href="{withdraw_url(letter)}"' not in html
        assert "Letter to " + customer.name + " withdrawn." in html
    else:
        assert (response.status_code, response.url) == (302, f"{QUEUE}#letter-{left.pk}")
        page = client.get(QUEUE)
        assert [x.pk for x in page.context["letters"]] == [left.pk]
        assert "Letter to " + customer.name + " withdrawn." in page.content.decode()


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_letter_is_withdrawn_only_with_a_reason(client, collector, letter, headers):
    before = letter_state(letter)
    client.force_login(collector)

    response = client.post(withdraw_url(letter), {"reason": "  "}, headers=headers)

    assert response.status_code == 422
    assert "Say why the letter is withdrawn." in response.content.decode()
    assert letter_state(letter) == before


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_reason_of_characters_no_one_sees_withdraws_no_letter(client, collector, letter, headers):
    """Zero-width spaces pasted from a web page: the timeline would say
    "withdrawn from the print queue: " and nothing after it."""
    before = letter_state(letter)
    client.force_login(collector)

    response = client.post(withdraw_url(letter), {"reason": "\u200b\u200b\u2060"}, headers=headers)

    assert response.status_code == 422
    said = "This holds only characters no one sees (U+200B, U+2060): write it out."
    assert said in response.content.decode()
    assert letter_state(letter) == before


def test_a_letter_no_longer_in_the_queue_cannot_be_withdrawn(client, collector, customer, make_letter):
    letter = make_letter(customer, printed_at=NOW - dt.timedelta(hours=1))
    before = letter_state(letter)
    client.force_login(collector)

    assert client.get(withdraw_url(letter)).status_code == 404
    assert client.post(withdraw_url(letter), {"reason": "Too late"}).status_code == 404
    assert letter_state(letter) == before


def test_a_letter_printed_while_its_withdrawal_was_being_written_is_refused_in_plain_words(
    client, collector, customer, make_letter
):
    """A colleague marked it printed while the reason was being typed: the
    answer says so, not that the page does not exist."""
    letter = make_letter(customer)
    client.force_login(collector)
    assert client.get(withdraw_url(letter)).status_code == 200
    DunningAction.objects.filter(pk=letter.pk).update(printed_at=NOW - dt.timedelta(minutes=5))
    before = letter_state(letter)

    response = client.post(withdraw_url(letter), {"reason": "Account paused"})

    assert response.status_code == 404
    assert (f"The letter to {customer.name} was marked printed on 5 Aug 2025 and has left the print queue: "
            "it can no longer be withdrawn.") in response.content.decode()
    assert letter_state(letter) == before


@pytest.mark.parametrize("intruder", ["other_collector", "viewer"])
def test_people_who_may_not_act_on_the_account_may_not_withdraw_its_letter(
    client, letter, intruder, request
):
    before = letter_state(letter)
    client.force_login(request.getfixturevalue(intruder))

    assert client.post(withdraw_url(letter), {"reason": "Mine now"}).status_code == 403
    assert client.get(withdraw_url(letter)).status_code == 403
    assert letter_state(letter) == before


def test_a_manager_may_withdraw_any_letter(client, manager, letter):
    client.force_login(manager)

    client.post(withdraw_url(letter), {"reason": "Account in a payment plan"})

    assert letter_state(letter)[:3] == (
        ActionStatus.SKIPPED, "withdrawn from the print queue: Account in a payment plan", manager.pk)


def test_withdrawing_answers_only_get_and_post_and_needs_the_csrf_token(client, collector, letter):
    before = letter_state(letter)
    client.force_login(collector)
    checking = Client(enforce_csrf_checks=True)
    checking.force_login(collector)

    assert client.put(withdraw_url(letter)).status_code == 405
    assert client.delete(withdraw_url(letter)).status_code == 405
    assert checking.post(withdraw_url(letter), {"reason": "x"}).status_code == 403
    assert letter_state(letter) == before


def test_anonymous_visitors_are_sent_to_log_in_and_nothing_is_withdrawn(client, letter):
    before = letter_state(letter)

    response = client.post(withdraw_url(letter), {"reason": "x"})

    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert letter_state(letter) == before


def test_a_letter_withdrawn_while_the_printed_form_was_checked_is_not_marked_posted(collector, letter):
    """The ticked letters are checked against the queue, then marked: a
    withdrawal committed in between (the letter still lists its open invoice)
    must not have the letter marked as gone to the post after all."""
    from ar_collections import delivery

    delivery.letter_withdraw(letter=letter, actor=collector, reason="They disputed it on the phone")

    assert delivery.letters_mark_printed(letter_ids=[letter.pk], actor=collector) == 0
    assert letter_state(letter)[0] == ActionStatus.SKIPPED
    assert printed(letter) == [None]


def withdraw_link(response, letter) -> str:
    """The page's "Withdraw" link of the letter (its href, unescaped)."""
    name = re.escape(letter.customer.name)
    found = re.search(rf'<a href="([^"]*)">Withdraw<span class="visually-hidden"> the letter to {name}<',
                      response.content.decode())
    return urljoin(QUEUE, html_text.unescape(found.group(1)))


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_letter_withdrawn_from_a_later_page_leads_back_to_that_page(client, collector, queue, headers):
    """Withdrawing is a page of its own: the way back from it, kept or
    withdrawn, is the page of the queue it was opened from, not the first."""
    client.force_login(collector)
    second_url = link(client.get(QUEUE), "next")
    letter = DunningAction.objects.select_related("customer").get(pk=queue[PAGE_SIZE])
    form_url = withdraw_link(client.get(second_url), letter)

    form = client.get(form_url)

    html = form.content.decode()
    back = re.search(r'<a href="([^"]*)">Keep it in the queue</a>', html).group(1)
    crumb = re.search(r'<a href="([^"]*)">Print queue</a> <span aria-hidden', html).group(1)
    assert html_text.unescape(back) == html_text.unescape(crumb) == second_url
    action = html_text.unescape(re.search(rf'<form method="post" action="({withdraw_url(letter)}[^"]*)"',
                                          html).group(1))
    response = client.post(action, {"reason": "They paid on the phone"}, headers=headers)
    assert letter_state(letter)[0] == ActionStatus.SKIPPED
    if headers:
        assert response.status_code == 200
        assert listed(response) == queue[PAGE_SIZE + 1:2 * PAGE_SIZE + 1]
    else:
        assert (response.status_code, response.url) == (302, f"{second_url}#letter-{queue[PAGE_SIZE + 1]}")
        assert listed(client.get(response.url)) == queue[PAGE_SIZE + 1:2 * PAGE_SIZE + 1]


# --- Where the queue opens without htmx ---------------------------------------------
# Letters marked printed or withdrawn leave the page; the browser follows the
# redirect to the box of the letter to go on with, which must be on the page
# it opens, wherever in the queue that letter now stands.


def opens_at(client, response) -> tuple[int | None, list[int]]:
    """The letter whose box a plain POST's redirect opens the queue at (None:
    at the list), and the letters of the page it opens, which holds that box."""
    assert response.status_code == 302
    url, _, anchor = response.url.partition("#")
    page = client.get(url)
    assert f'id="{anchor}"' in page.content.decode(), f"the page {url} opens has no #{anchor}"
    found = re.fullmatch(r"letter-(\d+)", anchor)
    return (int(found.group(1)) if found else None), listed(page)


def test_the_last_page_marked_printed_without_htmx_opens_the_page_holding_the_letter_before_it(
    client, collector, queue
):
    client.force_login(collector)
    third_url = link(client.get(link(client.get(QUEUE), "next")), "next")

    response = client.post(posts_to(client.get(third_url)), {"letters": queue[2 * PAGE_SIZE:]})

    letter, shown = opens_at(client, response)
    assert letter == queue[2 * PAGE_SIZE - 1]
    assert shown == queue[PAGE_SIZE:2 * PAGE_SIZE]


def test_a_page_reached_going_back_opens_at_the_next_letter_even_when_it_is_past_that_page(
    client, collector, queue
):
    """Previous from the last page shows the letters before its first: the
    one after the last of them is not on that page once they are printed."""
    client.force_login(collector)
    third = client.get(link(client.get(link(client.get(QUEUE), "next")), "next"))
    second_url = link(third, "prev")
    assert listed(client.get(second_url)) == queue[PAGE_SIZE:2 * PAGE_SIZE]

    last_three = queue[2 * PAGE_SIZE - 3:2 * PAGE_SIZE]
    response = client.post(posts_to(client.get(second_url)), {"letters": last_three})

    letter, shown = opens_at(client, response)
    assert letter == queue[2 * PAGE_SIZE]
    assert letter in shown


def test_the_last_letter_withdrawn_from_the_last_page_opens_the_page_holding_the_one_before_it(
    client, collector, make_customer, make_letter
):
    letters = [make_letter(make_customer(name=f"Customer {n:03d}")) for n in range(PAGE_SIZE + 1)]
    client.force_login(collector)
    second_url = link(client.get(QUEUE), "next")
    last = DunningAction.objects.select_related("customer").get(pk=letters[-1].pk)
    action = withdraw_link(client.get(second_url), last)

    response = client.post(action, {"reason": "Paid by card on the phone"})

    letter, shown = opens_at(client, response)
    assert letter == letters[-2].pk
    assert shown == [x.pk for x in letters[:PAGE_SIZE]]


def test_the_queue_emptied_from_a_later_page_opens_at_the_top_saying_nothing_waits(
    client, collector, make_customer, make_letter
):
    letters = [make_letter(make_customer(name=f"Customer {n:03d}")) for n in range(PAGE_SIZE + 1)]
    client.force_login(collector)
    first = client.get(QUEUE)
    second_url = link(first, "next")
    client.post(posts_to(first), {"letters": [x.pk for x in letters[:PAGE_SIZE]]})

    response = client.post(posts_to(client.get(second_url)), {"letters": [letters[-1].pk]})

    assert response.url == f"{QUEUE}#letters"
    assert opens_at(client, response) == (None, [])
    assert "Nothing waits to be printed." in client.get(QUEUE).content.decode()
