"""A form that sends something to the customer is carried out once however
often it is sent: a second click, a retry on a slow network, a page posted
again from another tab. Each opening of the form carries a one-time token;
the first POST takes it with what it records and sends, a second finds it
taken and records and sends nothing."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from ar_collections import workspace
from ar_collections.models import Call, FormSubmission, OutgoingMail, PaperDocument, PaymentPlan
from ar_collections.services import SENT_ALREADY
from ar_collections.statements import NOTE_MAX_LENGTH
from ar_collections.tasks import check_commitments
from arcrm.forms import FORM_OUT_OF_DATE
from customers.models import ContactRole, InvoiceDelivery, ReminderChannel, TimelineEvent
from tests.ar_collections.conftest import done_by_another_worker, in_another_thread, someone_waits_for_a_lock

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def account(make_customer, make_contact, make_invoice):
    """Anna Clerk, the billing contact, takes e-mail; Lotte Meijer takes paper.
    INV-1001 EUR 500.00 and INV-1002 EUR 700.00 are overdue."""
    customer = make_customer(name="Acme Tools")
    make_contact(customer, name="Anna Clerk", email="anna@acme.test", is_primary_billing=True)
    make_contact(customer, name="Lotte Meijer", email="", role=ContactRole.PURCHASING,
                 postal_address="Acme Tools\nKeizersgracht 12\n1015 CJ Amsterdam",
                 invoice_delivery=InvoiceDelivery.PAPER, reminder_channel=ReminderChannel.LETTER)
    for number, amount in [("INV-1001", "500.00"), ("INV-1002", "700.00")]:
        make_invoice(customer, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount=amount,
                     number=number)
    return customer


@pytest.fixture
def paper_account(account):
    """The same account whose billing contact takes paper: statements go by post."""
    account.contacts.filter(name="Anna Clerk").update(is_primary_billing=False)
    account.contacts.filter(name="Lotte Meijer").update(is_primary_billing=True)
    return account


def url(name: str, customer, *args) -> str:
    return reverse(f"collections:{name}", args=[customer.pk, *args])


def token_of(client, action_url: str) -> str:
    """The one-time token of the form as it opens."""
    html = client.get(action_url, headers=HTMX).content.decode()
    return re.search(r'<input type="hidden" name="submission" value="([0-9a-f-]+)"', html).group(1)


def call_form(account) -> dict:
    return {"contact": account.contacts.get(name="Anna Clerk").pk, "outcome": "reached",
            "notes": "Pays on Friday", "email_summary": "on"}


def sent() -> tuple:
    return (Call.objects.count(), OutgoingMail.objects.count(), PaperDocument.objects.count(),
            TimelineEvent.objects.count())


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_call_with_its_summary_sent_twice_is_logged_and_e_mailed_once(client, collector, account, headers):
    client.force_login(collector)
    action_url = url("call_log", account)
    form = {**call_form(account), "submission": token_of(client, action_url)}
    assert client.post(action_url, form).status_code == 302
    before = sent()
    assert before[:2] == (1, 1)

    again = client.post(action_url, form, headers=headers)

    assert again.status_code == 422
    assert SENT_ALREADY in again.content.decode()
    assert sent() == before


def test_a_statement_by_post_sent_twice_is_queued_for_the_post_once(client, collector, paper_account):
    client.force_login(collector)
    action_url = url("statement_send", paper_account)
    form = {"note": "", "submission": token_of(client, action_url)}
    assert client.post(action_url, form).status_code == 302
    before = sent()
    assert before[2] == 1

    again = client.post(action_url, form, headers=HTMX)

    assert again.status_code == 422
    assert SENT_ALREADY in again.content.decode()
    assert sent() == before


def test_an_invoice_copy_sent_twice_is_sent_once(client, collector, account):
    client.force_login(collector)
    action_url = url("invoice_copy", account)
    form = {"invoice": account.invoices.get(number="INV-1001").pk,
            "contact": account.contacts.get(name="Anna Clerk").pk, "submission": token_of(client, action_url)}
    assert client.post(action_url, form).status_code == 302
    before = sent()

    assert client.post(action_url, form, headers=HTMX).status_code == 422
    assert sent() == before
    assert OutgoingMail.objects.count() == 1


def test_a_plan_agreed_at_once_sent_twice_is_set_up_and_e_mailed_once(client, manager, account):
    client.force_login(manager)
    action_url = url("plan_propose", account)
    form = {"invoices": [account.invoices.get(number="INV-1002").pk], "instalment_count": "2",
            "first_due_on": "2025-08-15", "every_days": "30", "note": "",
            "submission": token_of(client, action_url)}
    assert client.post(action_url, form).status_code == 302
    before = (PaymentPlan.objects.count(), sent())

    assert client.post(action_url, form, headers=HTMX).status_code == 422
    assert (PaymentPlan.objects.count(), sent()) == before == (1, before[1])


def test_a_new_schedule_sent_twice_is_recorded_and_e_mailed_once(client, manager, account):
    client.force_login(manager)
    plan = workspace.plan_propose(
        customer=account, actor=manager, invoices=[account.invoices.get(number="INV-1002")],
        instalments=[(dt.date(2025, 8, 15), Decimal("350.00")), (dt.date(2025, 9, 15), Decimal("350.00"))],
        on=TODAY)
    action_url = url("plan_amend", account, plan.pk)
    form = {"instalments": "2025-08-20 350.00\n2025-09-20 350.00", "note": "Their bank moved the run",
            "submission": token_of(client, action_url)}
    assert client.post(action_url, form).status_code == 302
    before = sent()

    again = client.post(action_url, form, headers=HTMX)

    assert again.status_code == 422 and SENT_ALREADY in again.content.decode()
    assert sent() == before


def test_the_form_opened_again_sends_again(client, collector, paper_account):
    """Each opening is a new send: a collector who means a second statement gets it."""
    client.force_login(collector)
    action_url = url("statement_send", paper_account)
    for _ in range(2):
        token = token_of(client, action_url)
        assert client.post(action_url, {"note": "", "submission": token}).status_code == 302

    assert PaperDocument.objects.count() == 2


def test_a_form_refused_for_its_input_goes_through_once_put_right(client, collector, paper_account):
    """A refused form changed nothing: its token is still free for the corrected form."""
    client.force_login(collector)
    action_url = url("statement_send", paper_account)
    token = token_of(client, action_url)
    # A note longer than a statement takes.
    refused = client.post(action_url, {"note": "x" * (NOTE_MAX_LENGTH + 1), "submission": token},
                          headers=HTMX)
    assert refused.status_code == 422
    # The form comes back with the same token.
    assert f'value="{token}"' in refused.content.decode()

    assert client.post(action_url, {"note": "", "submission": token}).status_code == 302
    assert PaperDocument.objects.count() == 1


@pytest.mark.parametrize("token", ["", "not-a-token"])
def test_a_form_without_its_token_is_refused_as_out_of_date_and_sends_nothing(
    client, collector, account, token
):
    client.force_login(collector)
    before = sent()

    response = client.post(url("call_log", account), {**call_form(account), "submission": token},
                           headers=HTMX)

    assert response.status_code == 422
    assert FORM_OUT_OF_DATE in response.content.decode()
    assert sent() == before


@pytest.mark.django_db(transaction=True)
def test_the_same_form_sent_twice_at_once_is_carried_out_by_the_first_only(client, collector, account):
    """The second POST arrives while the first is still sending: it waits for
    the token the first holds and is then refused as sent already."""
    client.force_login(collector)
    action_url = url("call_log", account)
    form = {**call_form(account), "submission": str(uuid.uuid4())}
    # The first request, as far as its commit: the token taken, the call logged.
    first = done_by_another_worker(lambda: _call_and_token(account, collector, form))

    with first:
        second = in_another_thread(lambda: client.post(action_url, form, headers=HTMX))
        someone_waits_for_a_lock()
    response = second()

    assert response.status_code == 422 and SENT_ALREADY in response.content.decode()
    assert Call.objects.count() == 1


def _call_and_token(account, collector, form) -> None:
    from ar_collections.services import submission_record

    with transaction.atomic():
        submission_record(token=uuid.UUID(form["submission"]))
        workspace.call_log(customer=account, actor=collector, contact=account.contacts.get(name="Anna Clerk"),
                           outcome="reached", cause="", notes="Pays on Friday", promise=None,
                           email_summary=True, on=TODAY)


def test_the_daily_check_forgets_the_tokens_of_forms_carried_out_over_ninety_days_ago(db):
    now = timezone.now()
    old, recent = uuid.uuid4(), uuid.uuid4()
    FormSubmission.objects.create(token=old)
    FormSubmission.objects.create(token=recent)
    FormSubmission.objects.filter(token=old).update(created_at=now - dt.timedelta(days=91))
    FormSubmission.objects.filter(token=recent).update(created_at=now - dt.timedelta(days=89))

    counts = check_commitments()

    assert counts["form_tokens_forgotten"] == 1
    assert list(FormSubmission.objects.values_list("token", flat=True)) == [recent]
