"""Red tape: the collector finds the invoice never reached the right person; it
goes again at once, to whoever handles billing today, and only once."""

import datetime as dt

import pytest

from ar_collections.delivery import invoices_resend
from ar_collections.models import DunningCycle, MissCause
from ar_collections.services import cause_record
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
    attachment = next(resent[0].iter_attachments())
    assert "Acme Tools" in pdf_text(attachment.get_content())
    assert DunningCycle.objects.get(customer=behind).invoices_resent_on == NOTED
    assert TimelineEvent.objects.filter(
        customer=behind, kind=EventKind.DUNNING, summary__startswith="Invoices re-sent to Ben Backup"
    ).count() == 1


def test_a_repeated_resend_sends_nothing_more(behind, smtp_server):
    with frozen(NOTED):
        assert invoices_resend(customer_id=behind.pk, on=NOTED) == "emailed"
        assert invoices_resend(customer_id=behind.pk, on=NOTED) == "nothing"

    assert len(smtp_server.messages) == 2  # the first reminder and one copy


def test_a_refused_resend_can_be_tried_again(behind, smtp_server):
    smtp_server.refuse_with("550 mailbox unavailable")
    with frozen(NOTED), pytest.raises(Exception, match="550"):
        invoices_resend(customer_id=behind.pk, on=NOTED)
    assert DunningCycle.objects.get(customer=behind).invoices_resent_on is None

    smtp_server.refuse_with(None)
    with frozen(NOTED):
        assert invoices_resend(customer_id=behind.pk, on=NOTED) == "emailed"
