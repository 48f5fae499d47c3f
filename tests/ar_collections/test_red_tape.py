"""Red tape: the collector finds the invoice never reached the right person; it
goes again at once, to whoever handles billing today, and only once."""

import datetime as dt
from decimal import Decimal

import pytest

from ar_collections import outbox
from ar_collections.delivery import invoices_resend
from ar_collections.dunning import next_step
from ar_collections.models import DunningCycle, MailPurpose, MissCause, OutgoingMail, TimelineEventInvoice
from ar_collections.services import cause_record
from ar_collections.tasks import check_commitments
from customers.models import Contact, ContactAbsence, EventKind, TimelineEvent

from .conftest import DUE, frozen

NOTED = DUE + dt.timedelta(days=6)


@pytest.fixture
def behind(make_account, make_contact, plan_and_deliver, smtp_server):
    customer = make_account()
    plan_and_deliver(DUE + dt.timedelta(days=3))  # the friendly first reminder
    assert len(smtp_server.messages) == 1
    anna = Contact.objects.get(customer=customer, name="Anna Clerk")
    ben = make_contact(customer, name="Ben Backup", email="ben@acme.test")
    ContactAbsence.objects.create(contact=anna, starts_on=NOTED, ends_on=NOTED + dt.timedelta(days=10),
                                  delegate=ben, note="Parental leave")
    return customer


def test_noting_red_tape_resends_the_invoices_to_whoever_handles_billing_today(
    behind, collector, smtp_server, eager_celery, django_capture_on_commit_callbacks, pdf_text
):
    with frozen(NOTED), django_capture_on_commit_callbacks(execute=True):
        cause_record(customer=behind, cause=MissCause.RED_TAPE, actor=collector, on=NOTED)

    resent = smtp_server.messages[1:]
    assert [m["To"] for m in resent] == ["Ben Backup <ben@acme.test>"]
    body = resent[0].get_body(preferencelist=("plain",)).get_content()
    assert "EUR 1,200.00" in body
    assert "A copy of each invoice is attached." in body
    # The invoices themselves, a page each, not another reminder.
    [attachment] = resent[0].iter_attachments()
    cycle = DunningCycle.objects.get(customer=behind)
    assert attachment.get_filename() == f"invoices-R-{cycle.pk}.pdf"
    text = pdf_text(attachment.get_content())
    pages = [" ".join(page.split()) for page in text.split("\f") if page.strip()]
    assert [page.split("Copy of invoice ")[1].split()[0] for page in pages] == list(
        behind.invoices.order_by("due_date", "number").values_list("number", flat=True))
    assert all("Acme Tools" in page and "not a new invoice" in page for page in pages)
    assert cycle.invoices_resent_on == NOTED
    assert TimelineEvent.objects.filter(
        customer=behind, kind=EventKind.DUNNING, summary__startswith="Invoices re-sent to Ben Backup"
    ).count() == 1


def test_a_repeated_resend_sends_nothing_more(behind, smtp_server):
    with frozen(NOTED):
        assert invoices_resend(customer_id=behind.pk, on=NOTED) == "queued"
        assert invoices_resend(customer_id=behind.pk, on=NOTED) == "nothing"
    [mail] = OutgoingMail.objects.all()
    assert outbox.mails_send(mail_ids=[mail.pk]) == {"sent": 1}

    assert len(smtp_server.messages) == 2  # the first reminder and one copy


def test_a_resend_the_mail_server_puts_off_goes_later_and_one_it_refuses_is_on_the_timeline(
    behind, smtp_server
):
    smtp_server.refuse_with("451 4.3.0 Try again later")
    with frozen(NOTED):
        assert invoices_resend(customer_id=behind.pk, on=NOTED) == "queued"
    [mail] = OutgoingMail.objects.all()
    assert (mail.purpose, mail.to) == (MailPurpose.INVOICES_RESEND, ["Ben Backup <ben@acme.test>"])
    assert outbox.mails_send(mail_ids=[mail.pk]) == {"deferred": 1}
    mail.refresh_from_db()

    smtp_server.refuse_with(None)
    assert outbox.mails_sweep(now=mail.next_attempt_at) == 1  # handed to a worker again
    assert outbox.mails_send(mail_ids=[mail.pk]) == {"sent": 1}
    assert [m["To"] for m in smtp_server.messages[1:]] == ["Ben Backup <ben@acme.test>"]

    # Once more (the cycle's claim cleared), refused for good: said on the timeline, not lost.
    DunningCycle.objects.filter(customer=behind).update(invoices_resent_on=None)
    smtp_server.refuse_with("550 5.1.1 Mailbox unavailable")
    with frozen(NOTED):
        assert invoices_resend(customer_id=behind.pk, on=NOTED) == "queued"
    refused = OutgoingMail.objects.exclude(pk=mail.pk).get()
    assert outbox.mails_send(mail_ids=[refused.pk]) == {"failed": 1}
    failure = TimelineEvent.objects.get(customer=behind, summary__startswith="E-mail not sent")
    assert failure.kind == EventKind.DUNNING
    assert "ben@acme.test" in failure.summary and "550" in failure.summary
    # Under each invoice's filter too, as the re-send itself is.
    resent = TimelineEvent.objects.get(customer=behind, details__mail=refused.pk,
                                       summary__startswith="Invoices re-sent")
    linked = set(TimelineEventInvoice.objects.filter(event=failure).values_list("invoice_id", flat=True))
    assert linked and linked == set(
        TimelineEventInvoice.objects.filter(event=resent).values_list("invoice_id", flat=True))
    # The invoices never went: the cycle may have them re-sent again, once the address is fixed.
    assert DunningCycle.objects.get(customer=behind).invoices_resent_on is None
    smtp_server.refuse_with(None)
    with frozen(NOTED):
        assert invoices_resend(customer_id=behind.pk, on=NOTED) == "no-address"  # not to the refused one
    Contact.objects.filter(customer=behind, name="Ben Backup").update(email="ben.backup@acme.test")
    with frozen(NOTED):
        assert invoices_resend(customer_id=behind.pk, on=NOTED) == "queued"


def test_with_no_address_on_file_the_invoices_go_once_one_is_noted_and_red_tape_noted_again(
    behind, smtp_server
):
    Contact.objects.filter(customer=behind).update(email="")
    with frozen(NOTED):
        assert invoices_resend(customer_id=behind.pk, on=NOTED) == "no-address"
    assert DunningCycle.objects.get(customer=behind).invoices_resent_on is None
    assert TimelineEvent.objects.filter(
        customer=behind, summary="Invoices could not be re-sent: no billing e-mail address on file"
    ).count() == 1

    Contact.objects.filter(customer=behind, name="Ben Backup").update(email="ben@acme.test")
    with frozen(NOTED):
        assert invoices_resend(customer_id=behind.pk, on=NOTED) == "queued"


def test_the_next_step_waits_for_the_pay_by_date_the_resend_gave(make_account, plan_and_deliver):
    """Prompt ladder: the friendly e-mail on day 3 (pay by day 14: ten days are a
    Sunday), the next step from day 15. Red tape noted on day 12: the copy asks
    for payment by day 21 (seven days are Saturday 21 Mar: Monday 23 Mar)."""
    customer = make_account()
    plan_and_deliver(DUE + dt.timedelta(days=3))
    resent_on = DUE + dt.timedelta(days=12)
    with frozen(resent_on):
        assert invoices_resend(customer_id=customer.pk, on=resent_on) == "queued"
    assert "Please pay by: 23 Mar 2026" in OutgoingMail.objects.get(customer=customer).text
    with frozen(resent_on):
        assert next_step(customer, on=resent_on).due_on == DUE + dt.timedelta(days=22)  # the preview agrees

    for day in (15, 21):
        plan_and_deliver(DUE + dt.timedelta(days=day))
        assert not customer.dunning_actions.filter(step__position=2).exists()
    plan_and_deliver(DUE + dt.timedelta(days=22))
    assert customer.dunning_actions.get(step__position=2).planned_on == DUE + dt.timedelta(days=22)


def test_a_resend_never_asks_for_payment_sooner_than_the_notice_before_it(make_account, plan_and_deliver):
    """The friendly e-mail of day 3 asks for payment by day 14 (ten days are a
    Sunday); a copy sent on day 4 would say day 11. It repeats the date already given."""
    customer = make_account()
    plan_and_deliver(DUE + dt.timedelta(days=3))
    assert customer.dunning_actions.get().pay_by == DUE + dt.timedelta(days=14)
    resent_on = DUE + dt.timedelta(days=4)

    with frozen(resent_on):
        assert invoices_resend(customer_id=customer.pk, on=resent_on) == "queued"

    assert "Please pay by: 16 Mar 2026" in OutgoingMail.objects.get(customer=customer).text


def test_the_next_step_waits_for_the_pay_by_date_a_collector_s_invoice_copy_gave(
    make_account, plan_and_deliver, collector, pdf_text
):
    """Prompt ladder: the friendly e-mail on day 3 (pay by day 14: ten days are a
    Sunday), the next step from day 15. A collector e-mails a copy of one invoice
    on day 12, asking for payment within 7 days, Saturday 21 Mar, so by Monday
    23 Mar: the letter waits for day 22."""
    from ar_collections import workspace

    customer = make_account()
    plan_and_deliver(DUE + dt.timedelta(days=3))
    copied_on = DUE + dt.timedelta(days=12)
    with frozen(copied_on):
        workspace.invoice_copy_send(customer=customer, invoice=customer.invoices.order_by("number").first(),
                                    contact=customer.contacts.get(), actor=collector, on=copied_on)
        assert next_step(customer, on=copied_on).due_on == DUE + dt.timedelta(days=22)  # the preview agrees
    copy = OutgoingMail.objects.get(customer=customer)
    assert "transfer the open amount by 23 Mar 2026" in " ".join(pdf_text(bytes(copy.attachment)).split())

    for day in (15, 21):
        plan_and_deliver(DUE + dt.timedelta(days=day))
        assert not customer.dunning_actions.filter(step__position=2).exists()
    plan_and_deliver(DUE + dt.timedelta(days=22))
    assert customer.dunning_actions.get(step__position=2).planned_on == DUE + dt.timedelta(days=22)


def test_a_copy_sent_before_any_cycle_holds_the_first_step_until_its_pay_by_date(
    make_account, plan_and_deliver, collector, pdf_text
):
    """Prompt ladder: the friendly e-mail is due on day 3. A collector e-mails a
    copy of one invoice on day 1, asking for payment within 7 days (by day 8):
    the reminder waits for day 9, and the preview says so on day 1."""
    from ar_collections import workspace

    customer = make_account()
    copied_on = DUE + dt.timedelta(days=1)
    with frozen(copied_on):
        workspace.invoice_copy_send(customer=customer, invoice=customer.invoices.order_by("number").first(),
                                    contact=customer.contacts.get(), actor=collector, on=copied_on)
        assert next_step(customer, on=copied_on).due_on == DUE + dt.timedelta(days=9)
    copy = OutgoingMail.objects.get(customer=customer)
    assert "transfer the open amount by 10 Mar 2026" in " ".join(pdf_text(bytes(copy.attachment)).split())

    for day in (3, 8):
        plan_and_deliver(DUE + dt.timedelta(days=day))
        assert not customer.dunning_actions.exists()
    plan_and_deliver(DUE + dt.timedelta(days=9))
    assert customer.dunning_actions.get().planned_on == DUE + dt.timedelta(days=9)


def test_a_copy_the_mail_server_refuses_for_good_holds_nothing_back(
    make_account, plan_and_deliver, collector, smtp_server, django_capture_on_commit_callbacks
):
    """The friendly e-mail of day 3 asks for payment by day 14 (ten days are a
    Sunday). A copy on day 12 would hold the letter until day 22, but the server
    refuses it for good: the customer never had that date, so the letter goes
    on day 15."""
    from ar_collections import outbox, workspace

    customer = make_account()
    plan_and_deliver(DUE + dt.timedelta(days=3))
    copied_on = DUE + dt.timedelta(days=12)
    with frozen(copied_on), django_capture_on_commit_callbacks(execute=False):
        workspace.invoice_copy_send(customer=customer, invoice=customer.invoices.order_by("number").first(),
                                    contact=customer.contacts.get(), actor=collector, on=copied_on)
        assert next_step(customer, on=copied_on).due_on == DUE + dt.timedelta(days=22)

    smtp_server.refuse_with("550 5.1.1 Mailbox unavailable")
    assert outbox.mails_send(mail_ids=[OutgoingMail.objects.get(customer=customer).pk]) == {"failed": 1}

    with frozen(copied_on):
        assert next_step(customer, on=DUE + dt.timedelta(days=15)).due_on == DUE + dt.timedelta(days=15)


def test_a_copy_sent_in_a_cycle_that_closed_since_holds_nothing_in_the_next(
    make_account, make_invoice, plan_and_deliver, collector
):
    """A copy on day 4 asked for payment by day 11; the account paid everything
    on day 5, closing its cycle. An invoice falling due on day 6 starts a new
    cycle, whose first step (day 9) owes nothing to the old copy."""
    from ar_collections import workspace

    customer = make_account()
    plan_and_deliver(DUE + dt.timedelta(days=3))
    copied_on = DUE + dt.timedelta(days=4)
    with frozen(copied_on):
        workspace.invoice_copy_send(customer=customer, invoice=customer.invoices.order_by("number").first(),
                                    contact=customer.contacts.get(), actor=collector, on=copied_on)
    later = make_invoice(customer, issued=DUE - dt.timedelta(days=24), due=DUE + dt.timedelta(days=6),
                         amount="90.00")
    paid_on = DUE + dt.timedelta(days=5)
    with frozen(paid_on):
        old = list(customer.invoices.exclude(pk=later.pk))
        workspace.payment_record(customer=customer, amount=Decimal("1200.00"), currency="EUR",
                                 received_on=paid_on, allocations=[(i, i.open_amount) for i in old],
                                 reference="BANK-1", actor=collector)
    plan_and_deliver(paid_on)
    assert not customer.dunning_cycles.filter(closed_on__isnull=True).exists()

    with frozen(DUE + dt.timedelta(days=5)):
        assert next_step(customer, on=DUE + dt.timedelta(days=5)).due_on == DUE + dt.timedelta(days=9)


def test_a_resend_that_never_ran_goes_at_the_next_daily_check_and_only_once(
    behind, collector, smtp_server, eager_celery, django_capture_on_commit_callbacks
):
    # The re-send's task is lost (a worker killed, the broker restarted): the
    # collector's note is saved and nothing went.
    with frozen(NOTED):
        cause_record(customer=behind, cause=MissCause.RED_TAPE, actor=collector, on=NOTED)
    assert len(smtp_server.messages) == 1

    for _ in range(2):
        with frozen(NOTED + dt.timedelta(days=1)), django_capture_on_commit_callbacks(execute=True):
            check_commitments(on=(NOTED + dt.timedelta(days=1)).isoformat())
        outbox.mails_send(mail_ids=list(OutgoingMail.objects.values_list("pk", flat=True)))

    assert [m["To"] for m in smtp_server.messages[1:]] == ["Ben Backup <ben@acme.test>"]
    assert DunningCycle.objects.get(customer=behind).invoices_resent_on == NOTED + dt.timedelta(days=1)


def test_with_no_address_the_daily_check_tries_again_says_so_once_and_sends_once_one_is_on_file(
    behind, collector, smtp_server, eager_celery, django_capture_on_commit_callbacks
):
    Contact.objects.filter(customer=behind).update(email="")
    with frozen(NOTED):
        cause_record(customer=behind, cause=MissCause.RED_TAPE, actor=collector, on=NOTED)
    for days in (1, 2):
        with frozen(NOTED + dt.timedelta(days=days)), django_capture_on_commit_callbacks(execute=True):
            check_commitments(on=(NOTED + dt.timedelta(days=days)).isoformat())
    assert TimelineEvent.objects.filter(
        customer=behind, summary="Invoices could not be re-sent: no billing e-mail address on file"
    ).count() == 1
    assert not OutgoingMail.objects.exists()

    Contact.objects.filter(customer=behind, name="Ben Backup").update(email="ben@acme.test")
    with frozen(NOTED + dt.timedelta(days=3)), django_capture_on_commit_callbacks(execute=True):
        check_commitments(on=(NOTED + dt.timedelta(days=3)).isoformat())
    [mail] = OutgoingMail.objects.all()
    assert mail.purpose == MailPurpose.INVOICES_RESEND
    assert DunningCycle.objects.get(customer=behind).invoices_resent_on == NOTED + dt.timedelta(days=3)


def test_the_daily_check_resends_nothing_for_a_cycle_whose_cause_is_no_longer_red_tape(
    behind, collector, smtp_server, eager_celery, django_capture_on_commit_callbacks
):
    with frozen(NOTED):
        cause_record(customer=behind, cause=MissCause.RED_TAPE, actor=collector, on=NOTED)
        cause_record(customer=behind, cause=MissCause.STUFF_HAPPENS, actor=collector, on=NOTED)
    with frozen(NOTED + dt.timedelta(days=1)), django_capture_on_commit_callbacks(execute=True):
        check_commitments(on=(NOTED + dt.timedelta(days=1)).isoformat())
    assert not OutgoingMail.objects.exists()


def test_with_the_billing_contact_and_her_stand_in_both_away_the_resend_says_who_is_away_and_until_when(
    behind, smtp_server
):
    """Anna is away until 18 Mar and named Ben; Ben's own absence (to 12 Mar)
    was recorded after. Nothing goes, and the timeline names them and their
    days, not a missing address; once Ben is back, the invoices go to him."""
    ben = Contact.objects.get(customer=behind, name="Ben Backup")
    ContactAbsence.objects.create(contact=ben, starts_on=NOTED - dt.timedelta(days=1),
                                  ends_on=NOTED + dt.timedelta(days=4))

    for day in (NOTED, NOTED + dt.timedelta(days=1)):
        with frozen(day):
            assert invoices_resend(customer_id=behind.pk, on=day) == "nobody"

    assert not OutgoingMail.objects.exists()
    [said] = TimelineEvent.objects.filter(customer=behind, summary__startswith="Invoices could not")
    assert said.summary == ("Invoices could not be re-sent: Anna Clerk away until 18 Mar 2026, and Ben "
                            "Backup, written to instead, away until 12 Mar 2026")
    assert DunningCycle.objects.get(customer=behind).invoices_resent_on is None

    back = NOTED + dt.timedelta(days=5)
    with frozen(back):
        assert invoices_resend(customer_id=behind.pk, on=back) == "queued"
    assert OutgoingMail.objects.get().to == ["Ben Backup <ben@acme.test>"]


def test_a_resend_is_not_e_mailed_to_an_address_the_mail_server_refused_and_says_so_once(
    behind, collector, smtp_server, eager_celery, django_capture_on_commit_callbacks
):
    """Ben, standing in, has an address the mail server refused for good:
    nothing is e-mailed to it, day after day, and the timeline says why once;
    with a new address, the invoices go."""
    Contact.objects.filter(customer=behind, name="Ben Backup").update(
        email_refused="ben@acme.test", email_refused_on=NOTED - dt.timedelta(days=1))
    with frozen(NOTED), django_capture_on_commit_callbacks(execute=True):
        cause_record(customer=behind, cause=MissCause.RED_TAPE, actor=collector, on=NOTED)
    for days in (1, 2):
        with frozen(NOTED + dt.timedelta(days=days)), django_capture_on_commit_callbacks(execute=True):
            check_commitments(on=(NOTED + dt.timedelta(days=days)).isoformat())

    assert not OutgoingMail.objects.exists()
    assert list(TimelineEvent.objects.filter(customer=behind, summary__startswith="Invoices could not")
                .values_list("summary", flat=True)) == [
        "Invoices could not be re-sent: the mail server refused Ben Backup's address"]

    Contact.objects.filter(customer=behind, name="Ben Backup").update(email="ben.backup@acme.test")
    with frozen(NOTED + dt.timedelta(days=3)), django_capture_on_commit_callbacks(execute=True):
        check_commitments(on=(NOTED + dt.timedelta(days=3)).isoformat())
    assert OutgoingMail.objects.get().to == ["Ben Backup <ben.backup@acme.test>"]
