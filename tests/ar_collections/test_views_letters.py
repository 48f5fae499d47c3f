"""The print queue: dunning letters written and waiting for the post."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

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
)

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
    assert [x.pk for x in client.get(QUEUE).context["letters"]] == [mine.pk]
    client.force_login(manager)
    assert {x.pk for x in client.get(QUEUE).context["letters"]} == {mine.pk, ottos.pk}


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
    other = make_invoice(customer, issued=dt.date(2025, 6, 1))
    workspace.promise_record(customer=customer, actor=collector, amount=Decimal("10.00"),
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


@pytest.mark.parametrize("rows", [2, 20])
def test_the_print_queue_costs_the_same_number_of_queries_for_2_or_20_letters(
    client, collector, make_customer, make_contact, make_letter, django_assert_num_queries, rows
):
    for _ in range(rows):
        customer = make_customer()
        letter = make_letter(customer)
        DunningAction.objects.filter(pk=letter.pk).update(recipient=make_contact(customer))
    client.force_login(collector)

    # session, user, role groups, permissions (2), count, letters with customer,
    # step and recipient, their invoices paid since, their invoices and the
    # pauses since
    with django_assert_num_queries(10):
        response = client.get(QUEUE)

    assert len(response.context["letters"]) == rows


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


def test_marking_letters_printed_takes_them_out_of_the_queue(
    client, collector, make_customer, make_letter
):
    first, second, left = (make_letter(make_customer()) for _ in range(3))
    client.force_login(collector)

    response = client.post(PRINTED, {"letters": [first.pk, second.pk]})

    assert response.status_code == 302
    assert response.url == QUEUE
    assert printed(first, second, left) == [NOW, NOW, None]
    page = client.get(QUEUE)
    assert [x.pk for x in page.context["letters"]] == [left.pk]
    assert "2 letters marked as printed." in page.content.decode()


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
    [({}, "Tick the letters you printed."), ({"letters": ["x"]}, "not a letter of the print queue"),
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
    workspace.dispute_open(customer=customer, actor=collector, invoice=letter.lines.get().invoice,
                           reason="price", description="Billed twice", on=TODAY)
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
        assert (response.status_code, response.url) == (302, QUEUE)
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
    from ar_collections import delivery, views

    delivery.letter_withdraw(letter=letter, actor=collector, reason="They disputed it on the phone")

    assert views._letters_mark_printed(letter_ids=[letter.pk]) == 0
    assert letter_state(letter)[0] == ActionStatus.SKIPPED
    assert printed(letter) == [None]
