"""Delivering planned dunning actions through a real SMTP server on loopback."""

import datetime as dt
from decimal import Decimal
from html import unescape

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from ar_collections.delivery import (
    COPIES_AT_MOST,
    INSTALL_FAULT_RETRY_AFTER,
    MAX_DELIVERY_ATTEMPTS,
    action_approve,
    action_review,
    actions_deliver,
    contact_address_refused,
    message_id,
)
from ar_collections.dunning import dunning_run_execute, next_step, run_plan, run_start
from ar_collections.models import (
    ActionStatus,
    Allocation,
    Channel,
    CreditNote,
    DunningAction,
    DunningCycle,
    DunningPause,
    DunningRun,
    DunningStep,
    Invoice,
    InvoiceStatus,
    LateCharge,
    LatePaymentPolicy,
    MissCause,
    PauseKind,
    Payment,
    RunStatus,
    StepAction,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from ar_collections.services import listed_invoices_moot_said
from ar_collections.worklist import worklist_refresh
from ar_collections.workspace import payment_record
from customers.models import (
    Contact,
    ContactAbsence,
    ContactRole,
    EventKind,
    Language,
    ReminderChannel,
    Segment,
    TermsType,
    TimelineEvent,
)

from .conftest import DUE, frozen


def days(n: int) -> dt.date:
    return DUE + dt.timedelta(days=n)


def numbers(customer) -> list[str]:
    return list(Invoice.objects.filter(customer=customer).order_by("number").values_list("number", flat=True))


@pytest.fixture
def review_send(eager_celery, django_capture_on_commit_callbacks, collector):
    """review_send(action, note) → the action once sent from the review queue and
    delivered by the task the review hands it to (run in this process here;
    test_views_review.py has a real worker do it)."""

    def send(action: DunningAction, note: str) -> DunningAction:
        with django_capture_on_commit_callbacks(execute=True):
            action_review(action=action, collector=collector, send=True, note=note)
        action.refresh_from_db()
        return action

    return send


def dunning_events(customer) -> list[str]:
    return list(
        TimelineEvent.objects.filter(customer=customer, kind=EventKind.DUNNING)
        .order_by("id").values_list("summary", flat=True)
    )


@pytest.mark.parametrize(
    ("segment", "first_day", "subject_start"),
    [
        (Segment.PROMPT, 3, "Did our invoices"),
        (Segment.OCCASIONAL_SLIP, 5, "Did our invoices"),
        (Segment.SYSTEMATIC_LATE, -3, "Friendly reminder: invoices"),
        (Segment.NEW, 1, "Did our invoices"),
    ],
)
def test_the_first_step_of_each_emailing_ladder_emails_the_billing_contact(
    make_account, plan_and_deliver, smtp_server, segment, first_day, subject_start
):
    account = make_account(segment)

    assert plan_and_deliver(days(first_day - 1))["emailed"] == 0
    assert plan_and_deliver(days(first_day))["emailed"] == 1

    [message] = smtp_server.messages
    assert message["To"] == "Anna Clerk <anna@acme.test>"
    assert message["Subject"].startswith(subject_start)
    assert all(number in message["Subject"] for number in numbers(account))
    action = DunningAction.objects.get(customer=account)
    assert (action.status, action.channel, action.recipient.name) == (ActionStatus.DONE, Channel.EMAIL,
                                                                      "Anna Clerk")


def test_a_distressed_account_first_becomes_a_call_task_for_its_collector(
    make_account, plan_and_deliver, smtp_server
):
    account = make_account(Segment.DISTRESSED, phone="+49 30 555 01")

    assert plan_and_deliver(days(1))["call_tasks"] == 1

    assert smtp_server.messages == []
    action = DunningAction.objects.get(customer=account)
    assert (action.status, action.channel, action.recipient_address) == (
        ActionStatus.DONE, Channel.PHONE, "+49 30 555 01"
    )
    assert dunning_events(account) == [
        "Call task for carla: call Anna Clerk about EUR 1,200.00 (2 invoices), pay by 9 Mar 2026"
    ]


def test_a_special_bond_waits_for_the_collector_s_review_then_becomes_a_call(
    make_account, plan_and_deliver, smtp_server, collector, review_send
):
    account = make_account(Segment.SPECIAL_BOND)

    assert plan_and_deliver(days(7))["not_claimed"] == 1  # in review: delivery leaves it alone
    action = DunningAction.objects.get(customer=account)
    assert action.status == ActionStatus.IN_REVIEW

    with frozen(days(7)):
        reviewed = review_send(action, "Call them, gently")

    assert (reviewed.status, reviewed.channel, reviewed.reviewed_by) == (
        ActionStatus.DONE, Channel.PHONE, collector
    )
    assert smtp_server.messages == []


def test_a_call_made_later_than_planned_still_gives_the_full_time_to_pay(
    make_account, plan_and_deliver, review_send
):
    account = make_account(Segment.SPECIAL_BOND)
    plan_and_deliver(days(7))
    action = DunningAction.objects.get(customer=account)
    full_time = action.pay_by - action.planned_on

    with frozen(days(25)):  # the review waited 18 days, past the planned pay-by date
        reviewed = review_send(action, "Back from leave")

    assert reviewed.channel == Channel.PHONE
    assert reviewed.pay_by == days(25) + full_time
    assert f"pay by {reviewed.pay_by.day} " in dunning_events(account)[-1]


def test_no_step_is_planned_while_the_previous_one_waits_for_review(
    make_account, plan_and_deliver, review_send
):
    account = make_account(Segment.SPECIAL_BOND)
    plan_and_deliver(days(7))
    first = DunningAction.objects.get(customer=account)
    assert first.status == ActionStatus.IN_REVIEW

    for day in range(8, 61, 4):  # long past the second step's day: it still waits
        plan_and_deliver(days(day))
    assert DunningAction.objects.filter(customer=account).count() == 1
    assert "waits for a collector's review" in next_step(account, on=days(60)).note

    with frozen(days(61)):
        sent = review_send(first, "Called, friendly")
    plan_and_deliver(sent.pay_by)  # the pay-by date the call gave: not yet
    assert DunningAction.objects.filter(customer=account).count() == 1
    plan_and_deliver(sent.pay_by + dt.timedelta(days=1))
    assert DunningAction.objects.filter(customer=account).count() == 2


def test_a_reviewed_step_the_mail_server_put_off_goes_at_the_next_nightly_run(
    make_account, smtp_server, review_send, django_capture_on_commit_callbacks
):
    """Sent from the review queue after its run finished, a step the server
    answers "not now" is back to PLANNED; the next nightly run sends it, and
    the next step keeps its distance from the day it really went out."""
    LatePaymentPolicy.objects.filter(segment=Segment.PROMPT).update(auto_send=False)
    account = make_account(Segment.PROMPT)

    def nightly(day: int) -> None:
        with frozen(days(day)), django_capture_on_commit_callbacks(execute=True):
            dunning_run_execute(run_date=days(day))

    nightly(3)
    first = DunningAction.objects.get(customer=account)
    assert first.status == ActionStatus.IN_REVIEW and first.run.status == RunStatus.FINISHED
    smtp_server.refuse_with("451 4.3.0 Try again later")
    with frozen(days(5)):
        first = review_send(first, "Fine to send")
    assert first.status == ActionStatus.PLANNED and smtp_server.messages == []
    assert "has not gone out yet" in next_step(account, on=days(5)).note

    smtp_server.refuse_with(None)
    for day in range(6, 30):
        nightly(day)

    first.refresh_from_db()
    assert (first.status, first.done_at.date(), len(smtp_server.messages)) == (ActionStatus.DONE, days(6), 1)
    second = DunningAction.objects.filter(customer=account).exclude(pk=first.pk).get()
    assert second.planned_on > first.pay_by  # the deadline the late e-mail gave
    assert second.planned_on >= days(6 + 5)  # the minimum gap, from the day it went out


def test_the_minimum_gap_counts_from_the_day_a_step_went_out_not_the_day_it_was_planned(
    make_account, plan_and_deliver, smtp_server
):
    LatePaymentPolicy.objects.filter(segment=Segment.PROMPT).update(min_days_between_contacts=20)
    account = make_account(Segment.PROMPT)
    smtp_server.refuse_with("451 4.3.0 Try again later")
    plan_and_deliver(days(3))
    first = DunningAction.objects.get(customer=account)
    smtp_server.refuse_with(None)
    with frozen(days(6)):  # out three days late
        assert actions_deliver(action_ids=[first.pk])["emailed"] == 1

    for day in range(7, 31):
        plan_and_deliver(days(day))

    second = DunningAction.objects.filter(customer=account).exclude(pk=first.pk).get()
    assert second.planned_on == days(6 + 20)  # not days(3 + 20)


def test_no_step_is_planned_while_the_previous_one_has_not_gone_out(make_account):
    account = make_account(Segment.PROMPT)
    with frozen(days(3)):
        run_plan(run=run_start(run_date=days(3)))  # planned; no worker has sent it yet
    first = DunningAction.objects.get(customer=account)

    with frozen(days(20)):  # past the second step's day and the first's pay-by date
        run_plan(run=run_start(run_date=days(20)))

    assert list(DunningAction.objects.filter(customer=account)) == [first]
    assert "has not gone out yet" in next_step(account, on=days(20)).note


def _away(make_account, make_contact, *, first: int, last: int):
    """A prompt payer whose Anna Clerk is away from days(first) to days(last), Ben Backup standing in."""
    account = make_account(Segment.PROMPT)
    anna = account.contacts.get(name="Anna Clerk")
    ben = make_contact(account, name="Ben Backup", email="ben@acme.test")
    ContactAbsence.objects.create(contact=anna, starts_on=days(first), ends_on=days(last), delegate=ben)
    return account


def test_a_step_sent_late_goes_to_whoever_stands_in_on_the_day_it_is_sent(
    make_account, make_contact, plan_and_deliver, smtp_server
):
    account = _away(make_account, make_contact, first=5, last=12)
    smtp_server.refuse_with("451 4.3.0 Try again later")
    plan_and_deliver(days(3))  # planned while Anna is in; the server says not now
    action = DunningAction.objects.get(customer=account)
    assert action.status == ActionStatus.PLANNED

    smtp_server.refuse_with(None)
    with frozen(days(6)):  # Anna is away now
        actions_deliver(action_ids=[action.pk])

    [message] = smtp_server.messages
    assert message["To"] == "Ben Backup <ben@acme.test>"
    action.refresh_from_db()
    assert action.channel_note == "Anna Clerk away until 14 Mar: sent to Ben Backup"


def test_a_login_the_mail_server_refuses_delays_the_e_mails_instead_of_failing_them(
    make_account, plan_and_deliver, smtp_server, settings
):
    """A wrong password in the settings is fixed some morning; until then the
    e-mails wait, however many nights that takes, and are not failed for good
    and passed over. One failed login per batch, not one per e-mail; letters
    and calls in the batch go ahead."""
    emailed = [make_account(Segment.PROMPT),
               make_account(Segment.PROMPT, name="Beta Bau", email="ap@beta.test")]
    by_letter = make_account(Segment.PROMPT, name="Gamma Bau", email="")  # no address: a letter
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "arcrm", "wrong"
    smtp_server.accept_password("right")

    counts = plan_and_deliver(days(3))
    assert (counts["deferred"], counts["letters"], smtp_server.logins) == (2, 1, 1)
    assert DunningAction.objects.get(customer=by_letter).status == ActionStatus.DONE
    waiting = list(DunningAction.objects.filter(customer__in=emailed).values_list("pk", flat=True))
    for night in range(4, 4 + MAX_DELIVERY_ATTEMPTS + 1):  # more nights than attempts allowed
        with frozen(days(night)):
            assert actions_deliver(action_ids=waiting)["deferred"] == 2
    assert smtp_server.logins == 1 + MAX_DELIVERY_ATTEMPTS + 1
    for action in DunningAction.objects.filter(pk__in=waiting):
        assert (action.status, action.attempts) == (ActionStatus.PLANNED, 0)
        assert action.error.startswith("SessionRefused: the mail server refused the session: (535")

    settings.EMAIL_HOST_PASSWORD = "right"
    with frozen(days(12)):
        assert actions_deliver(action_ids=waiting)["emailed"] == 2
    assert sorted(m["To"] for m in smtp_server.messages) == [
        "Anna Clerk <anna@acme.test>", "Anna Clerk <ap@beta.test>"
    ]


def test_a_sender_address_the_mail_server_refuses_holds_the_e_mails_instead_of_failing_them(
    make_account, plan_and_deliver, smtp_server
):
    """A DEFAULT_FROM_EMAIL the server will not send as (553 on MAIL FROM) is
    the install's to fix, like a wrong password: no customer's step is to blame."""
    accounts = [make_account(Segment.PROMPT, name=f"Acme {n}", email=f"anna{n}@acme.test") for n in range(3)]
    smtp_server.refuse_sender("553 5.7.1 <ar@example.com>: Sender address rejected: not owned by user arcrm")

    counts = plan_and_deliver(days(3))

    assert (counts["deferred"], counts["failed"]) == (3, 0)
    for action in DunningAction.objects.filter(customer__in=accounts):
        assert (action.status, action.attempts) == (ActionStatus.PLANNED, 0)
        assert action.error.startswith("SMTPSenderRefused: (553")
    assert dunning_events(accounts[0])[-1].startswith(
        "Friendly reminder (step 1, E-mail) not sent yet, the mail server will not send from our address "
        "(the DEFAULT_FROM_EMAIL setting): SMTPSenderRefused: (553"
    )

    smtp_server.refuse_sender(None)
    with frozen(days(4)):
        assert actions_deliver(action_ids=list(DunningAction.objects.values_list("pk", flat=True)))[
            "emailed"] == 3


def test_a_collector_may_skip_a_step_in_review_but_only_with_a_reason(
    make_account, plan_and_deliver, collector, other_collector
):
    account = make_account(Segment.SPECIAL_BOND)
    plan_and_deliver(days(7))
    action = DunningAction.objects.get(customer=account)

    with pytest.raises(ValidationError):
        action_review(action=action, collector=collector, send=False, note="")
    with pytest.raises(PermissionDenied):
        action_review(action=action, collector=other_collector, send=False, note="Not my account")
    skipped = action_review(action=action, collector=collector, send=False, note="They paid by cheque")

    assert (skipped.status, skipped.skip_reason) == (ActionStatus.SKIPPED, "They paid by cheque")


def test_the_email_says_who_what_and_by_when_and_is_recorded(make_account, plan_and_deliver, smtp_server):
    account = make_account(Segment.PROMPT)

    plan_and_deliver(days(3))

    [message] = smtp_server.messages
    action = DunningAction.objects.get(customer=account)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for part in (text, html):
        assert "16 Mar 2026" in part  # pay by: ten days are Sunday 15 Mar
        assert "EUR 1,200.00" in part
        assert all(number in part for number in numbers(account))
    assert "did" not in text.lower() or "reached you" in text  # friendly: did it reach you?
    assert "credit hold" not in text
    assert message["Message-ID"] == message_id(action.pk) == f"<dunning-action-{action.pk}@example.com>"
    # A friendly "did it reach you?" carries no statement but the invoices themselves.
    assert [p.get_filename() for p in message.iter_attachments()] == [f"invoices-D-{action.pk}.pdf"]
    assert "A copy of each invoice is attached." in text
    assert (action.subject, action.body_text.splitlines(), action.recipient_address) == (
        message["Subject"], text.splitlines(), "anna@acme.test"
    )
    assert dunning_events(account) == [
        "Friendly reminder e-mailed to Anna Clerk: 2 invoices, EUR 1,200.00, pay by 16 Mar 2026"
    ]
    event = TimelineEvent.objects.get(customer=account, kind=EventKind.DUNNING)
    assert event.subject == action
    assert event.details["subject"] == message["Subject"]
    assert sorted(event.details["invoices"]) == numbers(account)


def test_a_friendly_reminder_s_invoice_copies_are_real_copies_asking_for_its_own_pay_by_date(
    make_account, plan_and_deliver, smtp_server, pdf_text, pdf_pages
):
    account = make_account(Segment.PROMPT, language=Language.DE)

    plan_and_deliver(days(3))

    [message] = smtp_server.messages
    action = DunningAction.objects.get(customer=account)
    [copies] = message.iter_attachments()
    assert copies.get_filename() == f"invoices-D-{action.pk}.pdf"
    pdf = copies.get_content()
    # A page each, the first invoice's copy first.
    assert pdf_pages(pdf) == 2
    first, second = numbers(account)
    # pdftotext ends each page with a form feed.
    page_one, page_two = (" ".join(page.split()) for page in pdf_text(pdf).split("\f")[:2])
    assert f"Kopie der Rechnung {first}" in page_one and second not in page_one
    assert f"Kopie der Rechnung {second}" in page_two
    for page in (page_one, page_two):
        # The same day to pay by as the e-mail: two dates would leave the customer unsure which holds.
        assert "bis zum 16.03.2026" in page
    body = message.get_body(("plain",)).get_content()
    assert "Eine Kopie jeder Rechnung finden Sie im Anhang." in body
    event = TimelineEvent.objects.get(customer=account, kind=EventKind.DUNNING)
    assert event.details["attachment"] == f"invoices-D-{action.pk}.pdf"


def test_a_friendly_reminder_about_one_invoice_carries_its_copy_under_its_number(
    make_customer, make_contact, make_invoice, plan_and_deliver, smtp_server, pdf_text
):
    account = make_customer(name="Acme Tools", segment=Segment.PROMPT)
    make_contact(account, name="Anna Clerk", is_primary_billing=True, email="anna@acme.test")
    invoice = make_invoice(account, issued=DUE - dt.timedelta(days=30), due=DUE, amount="500.00")

    plan_and_deliver(days(3))

    [message] = smtp_server.messages
    [copy] = message.iter_attachments()
    assert copy.get_filename() == f"invoice-{invoice.number}.pdf"
    assert f"Copy of invoice {invoice.number}" in " ".join(pdf_text(copy.get_content()).split())
    assert "A copy of the invoice is attached." in message.get_body(("plain",)).get_content()


def test_a_friendly_reminder_before_the_due_date_carries_no_copies(
    make_account, plan_and_deliver, smtp_server
):
    make_account(Segment.SYSTEMATIC_LATE)  # its ladder reminds three days before the due date

    plan_and_deliver(days(-3))

    [message] = smtp_server.messages
    assert not list(message.iter_attachments())
    assert "attached" not in message.get_body(("plain",)).get_content()


def test_a_friendly_reminder_about_more_invoices_than_copies_go_with_carries_none(
    make_account, make_invoice, plan_and_deliver, smtp_server
):
    many = make_account(Segment.PROMPT, name="Many Invoices Ltd")
    for n in range(COPIES_AT_MOST - 1):
        make_invoice(many, number=f"MANY-{n:02}", issued=DUE - dt.timedelta(days=30), due=DUE, amount="10.00")

    plan_and_deliver(days(3))

    [message] = smtp_server.messages
    assert DunningAction.objects.get(customer=many).lines.count() == COPIES_AT_MOST + 1
    assert not list(message.iter_attachments())
    assert "attached" not in message.get_body(("plain",)).get_content()


def test_a_reminder_in_yen_asks_for_whole_yen(make_customer, make_contact, make_invoice, plan_and_deliver,
                                             smtp_server):
    account = make_customer(name="Tokyo Parts", segment=Segment.PROMPT, currency="JPY")
    make_contact(account, name="Anna Clerk", is_primary_billing=True, email="anna@tokyo.test")
    for amount in ("2500", "3500"):
        make_invoice(account, issued=DUE - dt.timedelta(days=30), due=DUE, amount=amount)

    plan_and_deliver(days(3))

    [message] = smtp_server.messages
    for part in (message["Subject"], message.get_body(("plain",)).get_content(),
                 message.get_body(("html",)).get_content()):
        assert "JPY 6,000.00" not in part and "JPY 2,500.00" not in part
    for part in (message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()):
        assert "JPY 6,000" in part and "JPY 2,500" in part
    assert dunning_events(account) == [
        "Friendly reminder e-mailed to Anna Clerk: 2 invoices, JPY 6,000, pay by 16 Mar 2026"
    ]


def test_a_reminder_reaches_an_internationalised_domain_and_a_name_typed_on_two_lines(
    make_account, plan_and_deliver, smtp_server
):
    """Contact.email accepts anna@bäckerei-müller.de, which goes out encoded;
    a line break kept in a name would make Django refuse the To header."""
    account = make_account(Segment.PROMPT, email="anna@bäckerei-müller.de")
    account.contacts.update(name="Anna Clerk\nAccounts Payable")

    plan_and_deliver(days(3))

    action = DunningAction.objects.get(customer=account)
    assert (action.status, action.error) == (ActionStatus.DONE, "")
    [message] = smtp_server.messages
    assert message["To"] == "Anna Clerk Accounts Payable <anna@xn--bckerei-mller-bfb28a.de>"
    assert smtp_server.envelopes[0][1] == ["anna@xn--bckerei-mller-bfb28a.de"]


def test_an_absent_billing_contact_s_reminder_goes_to_the_stand_in(
    make_account, make_contact, plan_and_deliver, smtp_server
):
    account = _away(make_account, make_contact, first=0, last=10)

    plan_and_deliver(days(3))

    [message] = smtp_server.messages
    assert message["To"] == "Ben Backup <ben@acme.test>"
    assert "Dear Ben Backup," in message.get_body(("plain",)).get_content()
    action = DunningAction.objects.get(customer=account)
    assert action.channel_note == "Anna Clerk away until 12 Mar: sent to Ben Backup"


def test_a_reminder_whose_stand_in_is_away_too_becomes_a_call_task_that_says_why(
    make_account, make_contact, plan_and_deliver, smtp_server
):
    """Ben's own absence was recorded after Anna named him."""
    account = _away(make_account, make_contact, first=0, last=10)
    ContactAbsence.objects.create(contact=account.contacts.get(name="Ben Backup"), starts_on=days(2),
                                  ends_on=days(4))

    plan_and_deliver(days(3))

    assert smtp_server.messages == []
    action = DunningAction.objects.get(customer=account)
    assert (action.status, action.channel, action.recipient) == (ActionStatus.DONE, Channel.PHONE, None)
    assert action.channel_note == ("Anna Clerk away until 12 Mar, and Ben Backup, written to instead, away "
                                   "until 6 Mar: call task for the collector")
    assert f"Note: {action.channel_note}" in action.body_text
    assert WorkItem.objects.get(customer=account, kind=WorkKind.CALL).status == WorkStatus.OPEN


def test_the_account_page_says_before_an_escalation_that_without_a_principal_it_goes_to_the_billing_contact(
    make_account, plan_and_deliver, smtp_server, client, collector
):
    account = make_account(Segment.PROMPT)  # Anna Clerk, the billing contact, and no principal
    for day in (3, 15):  # the letter the day after the e-mail's pay-by date, Monday 16 Mar
        plan_and_deliver(days(day))
    client.force_login(collector)

    with frozen(days(16)):
        preview = next_step(account, on=days(16))
        page = " ".join(client.get(reverse("customers:detail", args=[account.pk])).content.decode().split())

    assert preview.step.action == StepAction.ESCALATE_PRINCIPAL
    assert preview.note == "No principal on file: goes to Anna Clerk, the billing contact."
    assert "No principal on file: goes to Anna Clerk, the billing contact." in page


def test_the_preview_of_an_escalation_to_a_principal_on_file_says_nothing_of_a_fallback(
    make_account, make_contact, plan_and_deliver, smtp_server
):
    account = make_account(Segment.PROMPT)
    make_contact(account, name="Paula Owner", role=ContactRole.PRINCIPAL, email="paula@acme.test")
    for day in (3, 15):  # the letter the day after the e-mail's pay-by date, Monday 16 Mar
        plan_and_deliver(days(day))

    with frozen(days(16)):
        preview = next_step(account, on=days(16))

    assert (preview.step.action, preview.note) == (StepAction.ESCALATE_PRINCIPAL, "")


def test_the_preview_of_an_escalation_to_a_principal_who_prefers_calls_says_it_becomes_a_call_task(
    make_account, make_contact, plan_and_deliver, smtp_server, client, collector
):
    """The send makes a call task of it (route_for); the account page says so beforehand."""
    account = make_account(Segment.PROMPT)
    make_contact(account, name="Paula Owner", role=ContactRole.PRINCIPAL, email="paula@acme.test",
                 phone="+49 30 1", reminder_channel=ReminderChannel.PHONE)
    for day in (3, 15):  # the letter the day after the e-mail's pay-by date, Monday 16 Mar
        plan_and_deliver(days(day))
    client.force_login(collector)

    with frozen(days(16)):
        preview = next_step(account, on=days(16))
        page = " ".join(client.get(reverse("customers:detail", args=[account.pk])).content.decode().split())

    said = "Paula Owner prefers calls: it becomes a call task for carla."
    assert (preview.step.action, preview.note) == (StepAction.ESCALATE_PRINCIPAL, said)
    assert said in page
    sent = len(smtp_server.messages)
    plan_and_deliver(preview.due_on)
    action = DunningAction.objects.get(customer=account, step=preview.step)
    assert (action.channel, action.recipient.name) == (Channel.PHONE, "Paula Owner")
    assert len(smtp_server.messages) == sent


def test_the_preview_of_an_escalation_names_whom_an_absent_principal_asked_us_to_write_to_as_the_send_does(
    make_account, make_contact, plan_and_deliver, smtp_server, client, collector
):
    """Paula is away from day 20 to day 35 (6 Apr) and named Ben: the escalation
    of day 28 (30 Mar) goes to Ben, and the account page says so beforehand."""
    account = make_account(Segment.PROMPT)
    paula = make_contact(account, name="Paula Owner", role=ContactRole.PRINCIPAL, email="paula@acme.test")
    ben = make_contact(account, name="Ben Backup", role=ContactRole.OTHER, email="ben@acme.test")
    ContactAbsence.objects.create(contact=paula, starts_on=days(20), ends_on=days(35), delegate=ben)
    for day in (3, 15):
        plan_and_deliver(days(day))
    client.force_login(collector)

    with frozen(days(16)):
        preview = next_step(account, on=days(16))
        page = " ".join(client.get(reverse("customers:detail", args=[account.pk])).content.decode().split())

    assert (preview.step.action, preview.due_on) == (StepAction.ESCALATE_PRINCIPAL, days(28))
    assert preview.note == "Paula Owner away until 6 Apr: goes to Ben Backup."
    assert "Paula Owner away until 6 Apr: goes to Ben Backup." in page
    plan_and_deliver(days(28))
    assert smtp_server.messages[-1]["To"] == "Ben Backup <ben@acme.test>"


def test_the_preview_of_an_escalation_whose_principal_and_her_stand_in_are_away_names_the_billing_contact(
    make_account, make_contact, plan_and_deliver, smtp_server
):
    """Ben's own absence (to day 30, 1 Apr) was recorded after Paula named him."""
    account = make_account(Segment.PROMPT)
    paula = make_contact(account, name="Paula Owner", role=ContactRole.PRINCIPAL, email="paula@acme.test")
    ben = make_contact(account, name="Ben Backup", role=ContactRole.OTHER, email="ben@acme.test")
    ContactAbsence.objects.create(contact=paula, starts_on=days(20), ends_on=days(35), delegate=ben)
    ContactAbsence.objects.create(contact=ben, starts_on=days(25), ends_on=days(30))
    for day in (3, 15):
        plan_and_deliver(days(day))

    with frozen(days(16)):
        preview = next_step(account, on=days(16))

    assert preview.note == ("Paula Owner away until 6 Apr, and Ben Backup, written to instead, away until "
                            "1 Apr: goes to Anna Clerk, the billing contact.")
    plan_and_deliver(days(28))
    assert smtp_server.messages[-1]["To"] == "Anna Clerk <anna@acme.test>"


def test_the_preview_of_an_escalation_with_everyone_away_says_it_becomes_a_call_task(
    make_account, make_contact, plan_and_deliver, smtp_server
):
    account = make_account(Segment.PROMPT)
    anna = account.contacts.get(name="Anna Clerk")
    paula = make_contact(account, name="Paula Owner", role=ContactRole.PRINCIPAL, email="paula@acme.test")
    ben = make_contact(account, name="Ben Backup", role=ContactRole.OTHER, email="ben@acme.test")
    for day in (3, 15):
        plan_and_deliver(days(day))
    ContactAbsence.objects.create(contact=paula, starts_on=days(20), ends_on=days(35))
    ContactAbsence.objects.create(contact=anna, starts_on=days(20), ends_on=days(31), delegate=ben)
    ContactAbsence.objects.create(contact=ben, starts_on=days(25), ends_on=days(30))

    with frozen(days(16)):
        preview = next_step(account, on=days(16))

    # Paula named nobody: she is written to all the same (as the send does).
    assert preview.note == ""
    ContactAbsence.objects.filter(contact=paula).update(delegate=ben)
    with frozen(days(16)):
        preview = next_step(account, on=days(16))
    assert preview.note == (
        "Paula Owner away until 6 Apr, and Ben Backup, written to instead, away until 1 Apr; the billing "
        "contact Anna Clerk away until 2 Apr, and Ben Backup, written to instead, away until 1 Apr: it "
        "becomes a call task for carla.")
    plan_and_deliver(days(28))
    action = DunningAction.objects.get(customer=account, step__action=StepAction.ESCALATE_PRINCIPAL)
    assert (action.channel, action.recipient) == (Channel.PHONE, None)


def test_an_escalation_reaches_the_principal(make_account, make_contact, plan_and_deliver, smtp_server):
    account = make_account(Segment.PROMPT)
    make_contact(account, name="Paula Owner", role=ContactRole.PRINCIPAL, email="paula@acme.test")

    for day in (3, 15, 28):
        plan_and_deliver(days(day))

    assert [m["To"] for m in smtp_server.messages] == [
        "Anna Clerk <anna@acme.test>",  # friendly e-mail
        "Anna Clerk <anna@acme.test>",  # firm letter, as an e-mail: Anna prefers e-mail
        "Paula Owner <paula@acme.test>",  # escalation
    ]
    escalation = smtp_server.messages[2]
    assert escalation["Subject"] == "Payment reminder: 2 overdue invoices, please pay by 9 Apr 2026"
    [statement] = escalation.iter_attachments()
    assert statement.get_content_type() == "application/pdf"


def test_without_an_email_address_the_reminder_becomes_a_letter_in_the_print_queue(
    make_account, plan_and_deliver, smtp_server, pdf_text
):
    account = make_account(Segment.PROMPT, email="")

    assert plan_and_deliver(days(3))["letters"] == 1

    assert smtp_server.messages == []
    action = DunningAction.objects.get(customer=account)
    assert (action.status, action.channel, action.channel_note, action.printed_at) == (
        ActionStatus.DONE, Channel.LETTER, "no e-mail address: letter", None
    )
    assert action.recipient_address == "Acme Tools, Main Street 1, 10115 Berlin"
    assert "Dear Anna Clerk" in pdf_text(action.letter_pdf.read())
    assert dunning_events(account) == [
        "Friendly reminder letter to Anna Clerk queued for printing: 2 invoices, EUR 1,200.00, "
        "pay by 16 Mar 2026"
    ]


def test_delivering_the_same_actions_again_sends_nothing_twice(make_account, plan_and_deliver, smtp_server):
    make_account(Segment.PROMPT)
    make_account(Segment.NEW, name="Beta Bakery")
    plan_and_deliver(days(3))
    ids = list(DunningAction.objects.values_list("pk", flat=True))

    again = actions_deliver(action_ids=ids + ids)

    assert again["not_claimed"] == 4
    assert len(smtp_server.messages) == 2
    assert set(DunningAction.objects.values_list("attempts", flat=True)) == {1}


def test_a_refused_email_fails_with_the_error_and_the_timeline_does_not_claim_it_was_sent(
    make_account, plan_and_deliver, smtp_server
):
    account = make_account(Segment.PROMPT)
    smtp_server.refuse_with("550 5.7.1 Message rejected as spam")

    assert plan_and_deliver(days(3))["failed"] == 1

    action = DunningAction.objects.get(customer=account)
    assert action.status == ActionStatus.FAILED
    assert "550" in action.error and "rejected as spam" in action.error
    assert (action.subject, action.done_at) == ("", None)
    [summary] = dunning_events(account)
    assert "failed, nothing was sent" in summary
    assert "e-mailed" not in summary
    assert smtp_server.messages == []


@pytest.fixture
def install_wording(settings, tmp_path):
    """install_wording(text) → the folder of the install's own friendly English
    wording (`en.txt` holding `text`), found before the shipped one;
    .deployed() makes the template engine read the folder afresh."""
    folder = tmp_path / "wording"

    def deployed() -> None:
        engine = settings.TEMPLATES[0]
        settings.TEMPLATES = [{**engine, "DIRS": [folder, *[d for d in engine["DIRS"] if d != folder]]}]

    def install(text: str):
        wording = folder / "email" / "dunning" / "friendly"
        wording.mkdir(parents=True)
        (wording / "en.txt").write_text(text)
        deployed()
        return wording

    install.deployed = deployed
    return install


def test_a_broken_wording_template_holds_the_step_with_a_clear_message_until_it_is_fixed(
    make_account, plan_and_deliver, smtp_server, install_wording
):
    """An install's own wording that does not parse is its to fix: the step
    waits (no attempt spent, nothing charged or sent) and says why, then goes
    out once the template is mended."""
    account = make_account(Segment.PROMPT)
    wording = install_wording("Dear {{ recipient_name }},\n{% if %}\n")

    assert plan_and_deliver(days(3))["deferred"] == 1

    action = DunningAction.objects.get(customer=account)
    assert (action.status, action.attempts) == (ActionStatus.PLANNED, 0)
    assert action.error == ("TemplateSyntaxError: email/dunning/friendly/en.txt (or a template it uses): "
                            "Unexpected end of expression in if tag.")
    assert dunning_events(account) == [
        f"Friendly reminder (step 1, E-mail) not sent yet, a wording template is broken: {action.error}"
    ]
    assert smtp_server.messages == [] and not LateCharge.objects.exists()

    (wording / "en.txt").unlink()  # mended: the shipped wording again
    with frozen(days(4)):
        assert actions_deliver(action_ids=[action.pk])["emailed"] == 1
    assert len(smtp_server.messages) == 1


def test_a_step_waiting_for_a_broken_wording_is_tried_hourly_and_said_on_the_timeline_once(
    make_account, plan_and_deliver, smtp_server, install_wording
):
    """The delivery sweep tries a step held by the install's fault again every
    hour until someone fixes it; the timeline says why once, not every hour."""
    account = make_account(Segment.PROMPT)
    install_wording("{% if %}\n")
    plan_and_deliver(days(3))
    action = DunningAction.objects.get(customer=account)

    for hour in range(1, 4):
        with frozen(days(3)) as clock:
            clock.shift(dt.timedelta(hours=hour))
            assert actions_deliver(action_ids=[action.pk])["deferred"] == 1
            action.refresh_from_db()
            # Both by the database's clock: an hour after the attempt began, however long it took.
            waits = action.sweep_after - action.claimed_at
            assert INSTALL_FAULT_RETRY_AFTER <= waits < INSTALL_FAULT_RETRY_AFTER + dt.timedelta(minutes=1)

    assert (action.status, action.attempts) == (ActionStatus.PLANNED, 0)
    assert len(dunning_events(account)) == 1


def test_a_wording_template_that_uses_a_missing_one_holds_the_step_until_it_is_fixed(
    make_account, plan_and_deliver, smtp_server, install_wording
):
    """An install's own wording that includes a file it forgot to add is as
    much its to fix as one that does not parse: the step waits, spending no
    attempt, rather than failing for good and the ladder passing over it."""
    account = make_account(Segment.PROMPT)
    wording = install_wording('Dear {{ recipient_name }},\n{% include "email/dunning/_sign.txt" %}\n')

    assert plan_and_deliver(days(3))["deferred"] == 1

    action = DunningAction.objects.get(customer=account)
    assert (action.status, action.attempts) == (ActionStatus.PLANNED, 0)
    assert action.error == "TemplateDoesNotExist: email/dunning/_sign.txt"
    assert dunning_events(account) == [
        f"Friendly reminder (step 1, E-mail) not sent yet, a wording template is missing: {action.error}"
    ]
    assert smtp_server.messages == [] and not LateCharge.objects.exists()

    (wording.parent / "_sign.txt").write_text("Carla from Accounts Receivable\n")  # mended,
    install_wording.deployed()  # and deployed
    with frozen(days(4)):
        assert actions_deliver(action_ids=[action.pk])["emailed"] == 1
    assert "Carla from Accounts Receivable" in smtp_server.messages[0].get_body(("plain",)).get_content()


@pytest.mark.parametrize(("line", "said"), [
    ("Dear {{ recipient_name|default:recipient_nam }},",
     "names 'recipient_nam', which is not a value it is given"),
    ("See {% url 'customers:nowhere' %}", "links to a page that does not exist"),
])
def test_a_wording_template_naming_what_does_not_exist_holds_the_step_and_says_what_in_a_line(
    make_account, plan_and_deliver, smtp_server, install_wording, line, said
):
    """A mistyped name in a filter or a link: the install's to fix, said in a
    line the timeline can show (Django's own message holds the whole context)."""
    account = make_account(Segment.PROMPT)
    install_wording(line + "\n")

    assert plan_and_deliver(days(3))["deferred"] == 1

    action = DunningAction.objects.get(customer=account)
    assert (action.status, action.attempts) == (ActionStatus.PLANNED, 0)
    assert action.error.startswith(
        "TemplateSyntaxError: email/dunning/friendly/en.txt (or a template it uses)"
    )
    assert said in action.error and "Anna" not in action.error and len(action.error) < 300
    assert smtp_server.messages == []


@pytest.mark.parametrize(("wording", "name"), [
    ("Could you arrange payment by {{ pay_byy }}?\n", "pay_byy"),
    ('{% extends layout %}{% block request %}Could you arrange payment by {{ pay_byy }}?{% endblock %}\n',
     "pay_byy"),
    ("{% if pay_byy %}Could you arrange payment by {{ pay_by }}?{% endif %}\n", "pay_byy"),
    # A part of each listed invoice: "Invoice : 120.00" reached customers.
    ("{% for line in lines %}Invoice {{ line.nmber }}: {{ line.amount }}\n{% endfor %}", "line.nmber"),
])
def test_a_wording_template_naming_a_value_a_notice_does_not_have_sends_nothing_and_says_which_name(
    make_account, plan_and_deliver, smtp_server, install_wording, client, manager, wording, name
):
    """A misspelt name ({{ pay_byy }}) rendered empty: customers were asked to
    "arrange payment by ?" while the timeline said the pay-by date. It is the
    install's to fix, like a template that does not parse: the step waits,
    nothing is sent or charged, and the timeline and the run's page name the
    file and the name."""
    account = make_account(Segment.PROMPT)
    install_wording(wording)

    assert plan_and_deliver(days(3))["deferred"] == 1

    action = DunningAction.objects.get(customer=account)
    assert (action.status, action.attempts) == (ActionStatus.PLANNED, 0)
    assert action.error == ("TemplateSyntaxError: email/dunning/friendly/en.txt (or a template it uses) "
                            f"names {name!r}, which is not a value it is given")
    assert dunning_events(account) == [
        f"Friendly reminder (step 1, E-mail) not sent yet, a wording template is broken: {action.error}"
    ]
    assert smtp_server.messages == [] and not LateCharge.objects.exists()
    client.force_login(manager)
    page = client.get(reverse("collections:run_detail", args=[action.run_id]))
    assert action.error in unescape(page.content.decode())


def test_a_mail_server_saying_try_later_leaves_the_action_planned_for_the_next_sweep(
    make_account, plan_and_deliver, smtp_server
):
    account = make_account(Segment.PROMPT)
    smtp_server.refuse_with("451 4.3.0 Try again later")

    assert plan_and_deliver(days(3))["deferred"] == 1
    action = DunningAction.objects.get(customer=account)
    assert (action.status, action.attempts) == (ActionStatus.PLANNED, 1)
    assert "451" in action.error

    smtp_server.refuse_with(None)
    with frozen(days(3)):
        assert actions_deliver(action_ids=[action.pk])["emailed"] == 1

    action.refresh_from_db()
    assert (action.status, action.attempts, action.error) == (ActionStatus.DONE, 2, "")
    assert len(smtp_server.messages) == 1
    assert "not sent yet" in dunning_events(account)[0]
    assert "e-mailed" in dunning_events(account)[1]


def test_an_unreachable_mail_server_gives_up_after_the_last_attempt(
    make_account, plan_and_deliver, settings, monkeypatch
):
    from ar_collections import delivery

    monkeypatch.setattr(delivery, "MAX_DELIVERY_ATTEMPTS", 2)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # discard port: connection refused
    account = make_account(Segment.PROMPT)

    assert plan_and_deliver(days(3))["deferred"] == 1
    action = DunningAction.objects.get(customer=account)
    with frozen(days(3)):
        assert actions_deliver(action_ids=[action.pk])["failed"] == 1

    action.refresh_from_db()
    assert (action.status, action.attempts) == (ActionStatus.FAILED, 2)
    assert "ConnectionRefusedError" in action.error


def test_a_mail_server_that_hangs_is_waited_for_once_per_batch_and_the_other_e_mails_spend_no_attempt(
    make_account, plan_and_deliver, silent_smtp
):
    """A server that takes the connection and never answers costs the batch one
    timeout, not one per e-mail (with 50 a batch and the 30 s default, 25
    minutes in which letters and calls wait too), and burns no attempt of the
    e-mails that were never tried. The letter in the batch goes ahead."""
    emailed = [make_account(Segment.PROMPT, name=f"Account {n}", email=f"ap{n}@example.test")
               for n in range(3)]
    by_letter = make_account(Segment.PROMPT, name="Gamma Bau", email="")  # no address: a letter

    counts = plan_and_deliver(days(3))

    assert (counts["deferred"], counts["letters"]) == (3, 1)
    assert len(silent_smtp.connections) == 1
    assert DunningAction.objects.get(customer=by_letter).status == ActionStatus.DONE
    waiting = DunningAction.objects.filter(customer__in=emailed)
    assert sorted(waiting.values_list("status", "attempts")) == [
        (ActionStatus.PLANNED, 0), (ActionStatus.PLANNED, 0), (ActionStatus.PLANNED, 1)
    ]
    for action in waiting.filter(attempts=0):
        [summary] = dunning_events(action.customer)
        assert summary == ("Friendly reminder (step 1, E-mail) not sent yet (no attempt spent), will retry: "
                           "NotTried: the mail server could not be reached moments ago: "
                           "Connection unexpectedly closed: timed out")


def test_a_reminder_is_skipped_when_everything_it_lists_was_paid_or_paused_meanwhile(
    make_account, smtp_server, collector
):
    account = make_account(Segment.PROMPT)
    first, second = Invoice.objects.filter(customer=account).order_by("number")
    with frozen(days(3)):
        from ar_collections.dunning import run_plan, run_start

        run_plan(run=run_start(run_date=days(3)))
    Invoice.objects.filter(pk=first.pk).update(status=InvoiceStatus.PAID, open_amount=0, settled_on=days(3))
    DunningPause.objects.create(customer=account, invoice=second, kind=PauseKind.DISPUTE, reason="Damaged",
                                owner=collector, starts_on=days(3))
    action = DunningAction.objects.get(customer=account)

    with frozen(days(3)):
        assert actions_deliver(action_ids=[action.pk])["skipped"] == 1

    action.refresh_from_db()
    assert action.status == ActionStatus.SKIPPED
    assert action.skip_reason == (f"by delivery every listed invoice was paid or paused "
                                  f"({first.number} paid; {second.number} paused)")
    assert smtp_server.messages == []
    assert "skipped" in dunning_events(account)[0]


def test_a_reminder_whose_invoices_were_cancelled_in_the_erp_or_written_off_is_skipped_saying_so(
    make_account, smtp_server
):
    """Not "paid or paused": a collector reading "paid" of an invoice raised
    in error would look for money that never came. Worded as the review
    queue words a skipped step."""
    account = make_account(Segment.PROMPT)
    first, second = Invoice.objects.filter(customer=account).order_by("number")
    with frozen(days(3)):
        run_plan(run=run_start(run_date=days(3)))
    Invoice.objects.filter(pk=first.pk).update(status=InvoiceStatus.CANCELLED, open_amount=0)
    action = DunningAction.objects.get(customer=account)
    Invoice.objects.filter(pk=second.pk).update(status=InvoiceStatus.CANCELLED, open_amount=0)

    with frozen(days(3)):
        assert actions_deliver(action_ids=[action.pk])["skipped"] == 1

    action.refresh_from_db()
    assert action.skip_reason == "by delivery every listed invoice was cancelled in the ERP"
    assert smtp_server.messages == []

    Invoice.objects.filter(pk=second.pk).update(status=InvoiceStatus.WRITTEN_OFF)
    assert listed_invoices_moot_said(action, by="delivery") == (
        f"by delivery every listed invoice was written off or cancelled in the ERP "
        f"({second.number} written off; {first.number} cancelled in the ERP)"
    )


def test_an_invoice_paid_since_planning_is_left_off_the_reminder(make_account, smtp_server):
    account = make_account(Segment.PROMPT)
    first, second = Invoice.objects.filter(customer=account).order_by("number")
    with frozen(days(3)):
        from ar_collections.dunning import run_plan, run_start

        run_plan(run=run_start(run_date=days(3)))
        Invoice.objects.filter(pk=first.pk).update(
            status=InvoiceStatus.PAID, open_amount=0, settled_on=days(3)
        )
        actions_deliver(action_ids=list(DunningAction.objects.values_list("pk", flat=True)))

    [message] = smtp_server.messages
    text = message.get_body(("plain",)).get_content()
    assert second.number in text and first.number not in text
    assert "EUR 700.00" in text


def test_a_contact_gets_her_own_language_s_words_and_one_we_do_not_write_english_with_a_note(
    make_account, plan_and_deliver, smtp_server
):
    german = make_account(Segment.PROMPT, language=Language.DE)
    spanish = make_account(Segment.PROMPT, name="Bar Sevilla", language=Language.ES)
    # Not among the choices today: one added before its wording is written.
    portuguese = make_account(Segment.PROMPT, name="Casa Lisboa", language="pt")

    plan_and_deliver(days(3))

    subjects = {m["Subject"].split()[0] for m in smtp_server.messages}
    assert subjects == {"Sind", "¿Ha", "Did"}
    german_text = next(m for m in smtp_server.messages if m["Subject"].startswith("Sind"))
    assert "16.03.2026" in german_text.get_body(("plain",)).get_content()
    spanish_text = next(m for m in smtp_server.messages if m["Subject"].split()[0] == "¿Ha")
    assert "16/03/2026" in spanish_text.get_body(("plain",)).get_content()
    assert DunningAction.objects.get(customer=german).channel_note == ""
    assert DunningAction.objects.get(customer=spanish).channel_note == ""
    assert DunningAction.objects.get(customer=portuguese).channel_note == (
        "no wording in language 'pt' yet: written in English"
    )


def test_an_account_whose_cause_is_stuff_happens_is_offered_a_payment_plan(
    make_account, plan_and_deliver, smtp_server
):
    account = make_account(Segment.PROMPT)
    plan_and_deliver(days(3))
    DunningCycle.objects.filter(customer=account).update(cause=MissCause.STUFF_HAPPENS)

    plan_and_deliver(days(15))  # the day after the e-mail's pay-by date, Monday 16 Mar

    first, second = (m.get_body(("plain",)).get_content() for m in smtp_server.messages)
    assert "payment plan" not in first
    assert "let us agree a payment plan" in second


def test_credits_not_yet_allocated_are_shown_as_credits_on_the_account(
    make_account, plan_and_deliver, smtp_server
):
    account = make_account(Segment.PROMPT)
    invoice = Invoice.objects.filter(customer=account).first()
    half_used = CreditNote.objects.create(number="CN-7", customer=account, issued_on=days(-10),
                                          amount=Decimal("80.00"))
    Allocation.objects.create(invoice=invoice, credit_note=half_used, amount=Decimal("30.00"),
                              allocated_on=days(-10), applied_on=days(-10))
    used_up = CreditNote.objects.create(number="CN-8", customer=account, issued_on=days(-10),
                                        amount=Decimal("10.00"))
    Allocation.objects.create(invoice=invoice, credit_note=used_up, amount=Decimal("10.00"),
                              allocated_on=days(-10), applied_on=days(-10))

    plan_and_deliver(days(3))

    text = smtp_server.messages[0].get_body(("plain",)).get_content()
    assert "Credits on your account" in text
    assert "CN-7" in text and "EUR 50.00" in text
    assert "CN-8" not in text


def test_a_payment_kept_on_account_is_shown_beside_the_credits(make_account, plan_and_deliver, smtp_server):
    account = make_account(Segment.PROMPT)
    # Held so: a payment recomputes the segment from history, which these invoices alone do not give.
    account.segment_override, account.segment_override_note = Segment.PROMPT, "Always paid on time"
    account.save(update_fields=["segment_override", "segment_override_note"])
    invoice = Invoice.objects.filter(customer=account).first()
    payment_record(customer=account, amount=Decimal("500.00"), currency="EUR", received_on=days(1),
                   allocations=[], reference="BANK-1")  # "the rest stays on account"
    payment_record(customer=account, amount=Decimal("20.00"), currency="EUR", received_on=days(1),
                   allocations=[(invoice, Decimal("20.00"))], reference="BANK-2")  # all applied

    plan_and_deliver(days(3))

    text = smtp_server.messages[0].get_body(("plain",)).get_content()
    credits = text.split("Credits on your account")[1]
    assert "Payment BANK-1 on account" in credits and "EUR 500.00" in credits
    assert "BANK-2" not in text


def test_years_of_credits_on_account_make_one_summed_line_not_a_long_notice(
    make_account, plan_and_deliver, smtp_server
):
    account = make_account(Segment.PROMPT)
    for n in range(1, 26):  # 25 payments of EUR 3.00 kept on account, one a day
        Payment.objects.create(customer=account, received_on=days(-30 + n), currency="EUR",
                               amount=Decimal("3.00"), reference=f"BANK-{n:02d}")

    plan_and_deliver(days(3))

    credits = smtp_server.messages[0].get_body(("plain",)).get_content().split("Credits on your account")[1]
    assert "15 earlier credits and payments on account" in credits and "EUR 45.00" in credits
    listed = [f"BANK-{n:02d}" for n in range(1, 26) if f"Payment BANK-{n:02d} on account" in credits]
    assert listed == [f"BANK-{n:02d}" for n in range(16, 26)]  # the newest ten, one by one


def test_each_step_is_firmer_than_the_one_before(make_account, plan_and_deliver, smtp_server):
    account = make_account(Segment.SYSTEMATIC_LATE)

    # e-mail, e-mail, letter (as e-mail: Anna prefers it), escalation; the letter's pay-by date is
    # Monday 23 Mar (seven days are a Saturday), so the escalation follows on day 22.
    for day in (-3, 3, 12, 22):
        plan_and_deliver(days(day))

    friendly, firm, firm_with_fee, final = (
        m.get_body(("plain",)).get_content() for m in smtp_server.messages
    )
    assert "due shortly" in friendly
    assert all(word not in friendly for word in ("late fee", "interest", "credit hold"))
    assert "allow us to charge a late fee and interest" in firm
    assert "we have added a late fee of EUR 40.00" in firm_with_fee
    assert "final reminder" in final
    assert all(word in final for word in ("credit hold", "cash on delivery", "further steps"))
    assert account.dunning_actions.filter(status=ActionStatus.DONE).count() == 4


def test_a_credit_hold_takes_effect_only_with_a_manager_s_approval(
    make_account, collector, manager
):
    account = make_account(Segment.SYSTEMATIC_LATE)
    action = _awaiting(account, StepAction.CREDIT_HOLD)

    with pytest.raises(PermissionDenied):
        action_approve(action=action, manager=collector, note="Please")
    with pytest.raises(ValidationError):
        action_approve(action=action, manager=manager, note=" ")
    done = action_approve(action=action, manager=manager, note="Third broken promise")

    account.refresh_from_db()
    assert account.on_credit_hold is True
    assert (done.status, done.reviewed_by) == (ActionStatus.DONE, manager)
    # A manager's decision, found under Exceptions with the declines.
    event = TimelineEvent.objects.get(customer=account, kind=EventKind.EXCEPTION)
    assert (event.actor, event.details["before"], event.details["after"], event.details["note"]) == (
        manager, {"on_credit_hold": False}, {"on_credit_hold": True}, "Third broken promise"
    )
    with pytest.raises(ValidationError):
        action_approve(action=done, manager=manager, note="Again")


def test_an_approved_switch_to_cod_changes_the_terms(make_account, manager):
    account = make_account(Segment.SYSTEMATIC_LATE)

    action_approve(action=_awaiting(account, StepAction.SWITCH_TO_COD), manager=manager, note="Too risky")

    account.refresh_from_db()
    assert account.terms_type == TermsType.COD


def _awaiting(account, step_action: str) -> DunningAction:
    """An action as the planner leaves a hold: waiting for approval, listing the open invoices."""
    step = DunningStep.objects.get(policy__segment=Segment.SYSTEMATIC_LATE, action=step_action)
    run = DunningRun.objects.create(run_date=days(step.day_offset))
    cycle = DunningCycle.objects.create(customer=account, number=1, opened_on=days(-3))
    action = DunningAction.objects.create(
        run=run, cycle=cycle, customer=account, step=step, status=ActionStatus.AWAITING_APPROVAL,
        planned_on=run.run_date, pay_by=run.run_date + dt.timedelta(days=step.pay_by_days),
    )
    for invoice in Invoice.objects.filter(customer=account):
        action.lines.create(invoice=invoice, open_amount=invoice.open_amount, currency=invoice.currency)
    return action


def test_no_charges_are_created_when_the_email_is_refused(make_account, plan_and_deliver, smtp_server):
    account = make_account(Segment.SYSTEMATIC_LATE)
    for day in (-3, 3):
        plan_and_deliver(days(day))
    smtp_server.refuse_with("554 5.0.0 No")
    DunningStep.objects.filter(policy__segment=Segment.SYSTEMATIC_LATE, position=3).update(
        action=StepAction.EMAIL
    )

    assert plan_and_deliver(days(12))["failed"] == 1

    assert not LateCharge.objects.filter(customer=account).exists()


def test_a_notice_sent_late_still_gives_the_full_time_to_pay_and_the_next_step_waits(
    make_account, smtp_server
):
    account = make_account(Segment.PROMPT)
    with frozen(days(3)):
        run_plan(run=run_start(run_date=days(3)))
    action = DunningAction.objects.get(customer=account)
    assert action.pay_by == days(14)  # ten days are Sunday 15 Mar: the Monday after

    with frozen(days(6)):  # the mail server was down for three days
        actions_deliver(action_ids=[action.pk])

    action.refresh_from_db()
    assert action.pay_by == days(16)
    [message] = smtp_server.messages
    assert "18 Mar 2026" in message.get_body(preferencelist=("plain",)).get_content()  # days(16)
    for day in (14, 15, 16):  # step 2 (day 14) waits until the moved pay-by date has passed
        with frozen(days(day)):
            run_plan(run=run_start(run_date=days(day)))
    assert DunningAction.objects.filter(customer=account).count() == 1
    with frozen(days(17)):
        run_plan(run=run_start(run_date=days(17)))
    assert DunningAction.objects.filter(customer=account).count() == 2


def test_a_reminder_that_goes_out_after_the_due_date_does_not_say_the_invoices_are_not_due(
    make_account, smtp_server
):
    account = make_account(Segment.SYSTEMATIC_LATE)  # its first step: a reminder 3 days before the due date
    with frozen(days(-3)):
        run_plan(run=run_start(run_date=days(-3)))
    action = DunningAction.objects.get(customer=account, step__position=1)

    with frozen(days(4)):  # held up for a week
        actions_deliver(action_ids=[action.pk])

    action.refresh_from_db()
    assert action.status == ActionStatus.DONE
    assert "due in 3 days" not in action.body_text
    assert "fall due shortly" not in action.body_text
    assert "due soon" not in action.subject


def test_a_manager_review_step_waits_for_a_manager_and_the_ladder_waits_with_it(
    make_account, plan_and_deliver, smtp_server, client, manager, collector
):
    """The distressed ladder: a call on day 1, a manager review on day 7, the
    principal on day 14. The review goes to the managers' queue, not done by
    itself nor by a collector; the principal waits for it."""
    account = make_account(Segment.DISTRESSED, name="Sinking Ltd")
    plan_and_deliver(days(1))
    plan_and_deliver(days(8))  # after the call's pay-by date: five days are Sunday 8 Mar, so Monday 9 Mar
    review = DunningAction.objects.get(customer=account, step__action=StepAction.MANAGER_REVIEW)
    assert review.status == ActionStatus.AWAITING_APPROVAL

    client.force_login(manager)
    assert "Sinking Ltd" in client.get(reverse("collections:approvals")).content.decode()
    with pytest.raises(ValidationError):  # not a collector's to skip
        action_review(action=review, collector=collector, send=False, note="Not needed")
    plan_and_deliver(days(15))
    assert not account.dunning_actions.filter(step__action=StepAction.ESCALATE_PRINCIPAL).exists()

    with frozen(days(15)):
        done = action_approve(action=review, manager=manager, note="Talked to the owner; plan coming")
    assert (done.status, done.reviewed_by) == (ActionStatus.DONE, manager)
    event = TimelineEvent.objects.filter(customer=account).latest("pk")
    assert event.actor == manager and "Manager review done by maria: Talked to the owner" in event.summary
    assert (event.details["before"], event.details["after"]) == ({"status": "awaiting_approval"},
                                                                 {"status": "done"})
    account.refresh_from_db()
    assert (account.on_credit_hold, account.terms_type) == (False, TermsType.STANDARD)
    plan_and_deliver(days(16))  # a review inside the house is no contact: no gap to wait out
    assert account.dunning_actions.filter(step__action=StepAction.ESCALATE_PRINCIPAL).exists()


def test_a_step_whose_balance_fell_under_the_minimum_since_planning_is_skipped(make_account, smtp_server):
    """Planned for EUR 1,200.00; by delivery all but EUR 20.00 is paid, under
    the EUR 25.00 minimum the planner itself applies: no notice for it."""
    account = make_account(Segment.PROMPT)
    with frozen(days(3)):
        run_plan(run=run_start(run_date=days(3)))
    action = DunningAction.objects.get(customer=account)
    small, large = Invoice.objects.filter(customer=account).order_by("total_amount")
    payment_record(customer=account, amount=Decimal("1180.00"), currency="EUR", received_on=days(3),
                   allocations=[(small, Decimal("480.00")), (large, Decimal("700.00"))], reference="BANK-9")

    with frozen(days(3)):
        assert actions_deliver(action_ids=[action.pk])["skipped"] == 1

    action.refresh_from_db()
    assert action.status == ActionStatus.SKIPPED
    assert action.skip_reason == "by delivery what is still due (EUR 20.00) is under the policy's minimum"
    assert smtp_server.messages == []


# --- An address the mail server refuses for good ------------------------------------


@pytest.fixture
def bounced(make_account, plan_and_deliver, smtp_server):
    """Prompt ladder (the e-mail of day 3, the PDF letter of day 14); the
    billing contact has a postal address, but her mailbox no longer exists."""
    account = make_account(Segment.PROMPT)
    smtp_server.refuse_with("550 5.1.1 <anna@acme.test>: Recipient address rejected: User unknown")
    assert plan_and_deliver(days(3))["failed"] == 1
    return account


def test_a_refused_address_is_marked_and_the_collector_asked_for_a_working_one(bounced):
    anna = Contact.objects.get(customer=bounced)
    assert (anna.email_refused, anna.email_refused_on) == ("anna@acme.test", days(3))
    assert "5.1.1" in anna.email_refused_reason
    (item,) = WorkItem.objects.filter(customer=bounced, status=WorkStatus.OPEN)
    assert item.kind == WorkKind.ADDRESS_REFUSED and item.assignee == bounced.collector
    assert "anna@acme.test" in item.title


def test_after_a_refused_address_the_next_written_step_goes_by_post(bounced, plan_and_deliver, smtp_server):
    smtp_server.refuse_with(None)

    plan_and_deliver(days(14))

    step2 = DunningAction.objects.get(customer=bounced, step__position=2)
    assert (step2.status, step2.channel) == (ActionStatus.DONE, Channel.LETTER), step2.error
    assert step2.channel_note == ("Anna Clerk prefers e-mails; the mail server refused anna@acme.test on "
                                  "5 Mar 2026: letter")
    assert len(smtp_server.messages) == 0


def test_a_new_address_is_written_to_again(bounced, plan_and_deliver, smtp_server):
    smtp_server.refuse_with(None)
    Contact.objects.filter(customer=bounced).update(email="anna.clerk@acme.test")

    plan_and_deliver(days(14))

    step2 = DunningAction.objects.get(customer=bounced, step__position=2)
    assert (step2.status, step2.channel, step2.recipient_address) == (
        ActionStatus.DONE, Channel.EMAIL, "anna.clerk@acme.test"
    )


def test_a_refusal_for_other_reasons_marks_no_address(make_account, plan_and_deliver, smtp_server):
    """A 5.7.1 (policy, spam) says nothing about the mailbox."""
    account = make_account(Segment.PROMPT)
    smtp_server.refuse_with("550 5.7.1 Message rejected as spam")

    assert plan_and_deliver(days(3))["failed"] == 1

    assert Contact.objects.get(customer=account).email_refused == ""
    assert not WorkItem.objects.filter(customer=account).exists()


def test_the_account_page_says_the_address_was_refused(bounced, client):
    client.force_login(bounced.collector)

    page = " ".join(client.get(reverse("customers:detail", args=[bounced.pk])).content.decode().split())

    assert "refused by the mail server on 5 Mar 2026: reminders go by post" in page


def test_a_relay_refusal_at_rcpt_marks_no_contact_address_refused(
    make_account, plan_and_deliver, smtp_server
):
    """"554 5.7.1 Relay access denied" at RCPT says nothing about the mailbox:
    no contact's address is marked refused."""
    accounts = [make_account(Segment.PROMPT, name=f"Acme {n}", email=f"anna{n}@acme.test") for n in range(2)]

    async def relay_denied(server, session, envelope, address, rcpt_options):
        return f"554 5.7.1 <{address}>: Relay access denied"

    smtp_server._mailbox.handle_RCPT = relay_denied

    plan_and_deliver(days(3))

    refused = list(Contact.objects.filter(customer__in=accounts).exclude(email_refused="")
                   .values_list("email_refused", flat=True))
    items = list(WorkItem.objects.filter(kind=WorkKind.ADDRESS_REFUSED).values_list("title", flat=True))
    assert (refused, items) == ([], [])


def test_the_refused_address_item_leaves_the_worklist_once_the_contact_has_a_new_address(
    make_account, plan_and_deliver, smtp_server, client, collector
):
    """The collector is asked to "find one that works"; once she saves it on
    the contact, the next refresh takes the item off her list."""
    from django.urls import reverse

    from ar_collections.models import WorkStatus
    from tests.customers.test_views_edit import contact_data

    account = make_account(Segment.PROMPT)
    smtp_server.refuse_with("550 5.1.1 <anna@acme.test>: Recipient address rejected: User unknown")
    assert plan_and_deliver(days(3))["failed"] == 1
    anna = Contact.objects.get(customer=account)
    assert WorkItem.objects.filter(kind=WorkKind.ADDRESS_REFUSED, status=WorkStatus.OPEN).count() == 1

    client.force_login(collector)
    with frozen(days(4)):
        response = client.post(
            reverse("customers:contact_edit", args=[account.pk, anna.pk]),
            contact_data(name="Anna Clerk", email="anna.clerk@acme.test", is_primary_billing=True,
                         postal_address=anna.postal_address),
        )
        assert response.status_code in (200, 302), response.status_code
        anna.refresh_from_db()
        assert anna.email == "anna.clerk@acme.test"
        worklist_refresh(on=days(4))

    still_open = list(WorkItem.objects.filter(kind=WorkKind.ADDRESS_REFUSED, status=WorkStatus.OPEN)
                      .values_list("title", flat=True))
    assert still_open == []


def test_an_address_marked_as_working_again_is_written_to_and_a_new_refusal_asks_again(
    bounced, plan_and_deliver, smtp_server, client
):
    """The customer fixed the mailbox: the collector ticks it on the contact
    rather than retyping the address; the item closes at once, the next step
    is an e-mail, and should the server refuse it again the item comes back."""
    from tests.customers.test_views_edit import contact_data

    anna = Contact.objects.get(customer=bounced)
    url = reverse("customers:contact_edit", args=[bounced.pk, anna.pk])
    client.force_login(bounced.collector)
    form = " ".join(client.get(url).content.decode().split())
    assert "The mail server takes this address again" in form
    assert "Refused on 5 Mar 2026 (550 5.1.1" in form, form.split("Refused on")[1][:300]

    with frozen(days(4)):
        response = client.post(url, contact_data(
            name="Anna Clerk", job_title=anna.job_title, email="anna@acme.test", is_primary_billing=True,
            postal_address=anna.postal_address, email_works=True,
        ))
        assert response.status_code == 302

    anna.refresh_from_db()
    assert (anna.email_refused, anna.email_refused_on, anna.email_usable) == ("", None, True)
    assert not WorkItem.objects.filter(customer=bounced, status=WorkStatus.OPEN).exists()
    event = TimelineEvent.objects.filter(customer=bounced, kind=EventKind.CONTACT_CHANGED).latest("pk")
    assert event.summary == "Contact Anna Clerk changed: address marked as working again"
    assert event.actor == bounced.collector
    assert "The mail server takes this address again" not in client.get(url).content.decode()

    smtp_server.refuse_with(None)
    plan_and_deliver(days(14))
    step2 = DunningAction.objects.get(customer=bounced, step__position=2)
    assert (step2.status, step2.channel) == (ActionStatus.DONE, Channel.EMAIL), step2.error

    # Refused again (by whichever mail: the dunning step's and a copy's take this path).
    with frozen(days(25)):
        contact_address_refused(Contact.objects.get(pk=anna.pk), customer=bounced, reason="550 5.1.1 gone")
    (item,) = WorkItem.objects.filter(customer=bounced, kind=WorkKind.ADDRESS_REFUSED, status=WorkStatus.OPEN)
    assert item.due_on == days(25)


def test_a_reviewed_step_names_the_collector_by_full_name_on_the_timeline(
    make_account, plan_and_deliver, collector
):
    collector.first_name, collector.last_name = "Carla", "Collins"
    collector.save()
    account = make_account(Segment.SPECIAL_BOND)
    plan_and_deliver(days(7))
    action = DunningAction.objects.get(customer=account)

    action_review(action=action, collector=collector, send=False, note="They paid by cheque")

    assert TimelineEvent.objects.filter(
        customer=account, summary__contains="skipped by Carla Collins: They paid by cheque"
    ).exists()
