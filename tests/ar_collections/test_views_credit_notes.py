"""Recording a credit note on the account page: it takes its amount off the
invoice, goes on the timeline and reduces the payment plan holding the
invoice, as a dispute's credit note does; what it refuses and who may. The
admin shows credit notes but neither enters, changes nor deletes them."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from ar_collections import workspace
from ar_collections.models import (
    Allocation,
    CreditNote,
    DisputeReason,
    Invoice,
    InvoiceStatus,
    PaymentBehaviour,
    PlanStatus,
    TimelineEventInvoice,
)
from customers.models import EventKind, TimelineEvent
from tests.ar_collections.conftest import (
    done_by_another_worker,
    in_another_thread,
    someone_waits_for_a_lock,
)

TODAY = dt.date(2025, 8, 5)
HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.usefixtures("_frozen_today")


@pytest.fixture
def invoices(customer, make_invoice) -> list[Invoice]:
    """INV-1 EUR 500.00 due 1 Jul, INV-2 EUR 700.00 due 15 Jul, INV-3 JPY 30,000 due 20 Jul."""
    return [
        make_invoice(customer, issued=due - dt.timedelta(days=30), due=due, amount=amount, number=number,
                     currency=currency)
        for number, due, amount, currency in [
            ("INV-1", dt.date(2025, 7, 1), "500.00", "EUR"),
            ("INV-2", dt.date(2025, 7, 15), "700.00", "EUR"),
            ("INV-3", dt.date(2025, 7, 20), "30000", "JPY"),
        ]
    ]


def credit_url(customer) -> str:
    return reverse("collections:credit_note_record", args=[customer.pk])


def form(invoice, /, **fields) -> dict:
    data = {"invoice": invoice.pk if invoice else "", "amount": "200.00", "issued_on": "2025-08-04",
            "number": "ERP-CN-77", "reason": "Two crates returned"}
    data.update(fields)
    return data


def state() -> tuple:
    return (
        sorted(CreditNote.objects.values_list("number", "amount")),
        sorted(Allocation.objects.values_list("invoice__number", "amount")),
        sorted(Invoice.objects.values_list("number", "open_amount", "status")),
        TimelineEvent.objects.count(),
    )


def test_a_credit_note_takes_its_amount_off_the_invoice_and_goes_on_the_timeline(
    client, manager, customer, invoices
):
    client.force_login(manager)

    response = client.post(credit_url(customer), form(invoices[0]))

    assert response.status_code == 302
    assert response.url == reverse("customers:detail", args=[customer.pk]) + "#timeline"
    note = CreditNote.objects.get()
    assert (note.number, note.invoice, note.amount, note.currency, note.issued_on, note.reason) == (
        "ERP-CN-77", invoices[0], Decimal("200.00"), "EUR", dt.date(2025, 8, 4), "Two crates returned")
    assert list(note.allocations.values_list("invoice__number", "amount", "allocated_on")) == [
        ("INV-1", Decimal("200.00"), dt.date(2025, 8, 4))]
    invoices[0].refresh_from_db()
    assert (invoices[0].open_amount, invoices[0].status) == (Decimal("300.00"), InvoiceStatus.OPEN)
    event = TimelineEvent.objects.get(customer=customer, kind=EventKind.CREDIT_NOTE)
    assert event.summary == "Credit note ERP-CN-77 for EUR 200.00 on INV-1: Two crates returned"
    assert event.actor == manager
    page = client.get(response.url).content.decode()
    assert "Credit note ERP-CN-77 for EUR 200.00 recorded on INV-1; EUR 300.00 is still open." in page
    # Set against its invoice: not a credit the customer may still deduct.
    assert "Credit note ERP-CN-77</th>" not in page


def test_a_credit_note_recomputes_the_account_s_figures_as_of_today(
    client, manager, customer, invoices, django_capture_on_commit_callbacks
):
    """The account page shows what is open after the credit at once, not after
    the night; an account never computed before is computed too."""
    client.force_login(manager)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(credit_url(customer), form(invoices[1], number="", amount="700.00"))

    behaviour = PaymentBehaviour.objects.get(customer=customer)
    assert (behaviour.computed_on, behaviour.invoices_settled, behaviour.open_invoices) == (TODAY, 1, 1)
    assert behaviour.other_currency_open_invoices == 1  # the other-currency invoice, counted apart
    assert (behaviour.open_amount, behaviour.overdue_amount) == (Decimal("500.00"), Decimal("500.00"))
    customer.refresh_from_db()
    assert customer.segment_reason.endswith("with 1 settled invoice; too little history to judge.")


def test_without_a_number_a_credit_note_takes_the_next_of_our_own_series(client, manager, customer, invoices):
    client.force_login(manager)

    client.post(credit_url(customer), form(invoices[1], number="", amount="700.00"))

    assert CreditNote.objects.get().number == "CN-2025-00001"
    invoices[1].refresh_from_db()
    assert (invoices[1].open_amount, invoices[1].status, invoices[1].settled_on) == (
        Decimal("0.00"), InvoiceStatus.PAID, dt.date(2025, 8, 4))
    assert TimelineEvent.objects.get(kind=EventKind.CREDIT_NOTE).summary == (
        "Credit note CN-2025-00001 for EUR 700.00 on INV-2, which leaves nothing open: Two crates returned")


def test_with_htmx_the_account_parts_swap_in_place_with_the_new_open_amount(
    client, manager, customer, invoices
):
    client.force_login(manager)

    response = client.post(credit_url(customer), form(invoices[0]), headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200 and response["HX-Retarget"] == "#action-panel"
    assert re.search(r'<section id="open-invoices"[^>]*hx-swap-oob="true"', html)
    assert "Credit note ERP-CN-77 for EUR 200.00 on INV-1: Two crates returned" in html


def test_a_credit_note_on_a_planned_invoice_comes_off_the_plan_s_last_instalment(
    client, manager, collector, customer, invoices
):
    plan = workspace.plan_propose(
        customer=customer, actor=collector, invoices=invoices[:2], on=TODAY,
        instalments=[(dt.date(2025, 8, 20), Decimal("600.00")), (dt.date(2025, 9, 20), Decimal("600.00"))],
    )
    client.force_login(manager)

    client.post(credit_url(customer), form(invoices[1], amount="250.00", issued_on="2025-08-05"))

    plan.refresh_from_db()
    assert (plan.status, plan.total_amount) == (PlanStatus.ACTIVE, Decimal("950.00"))
    assert list(plan.instalments.order_by("number").values_list("amount", flat=True)) == [
        Decimal("600.00"), Decimal("350.00")]
    summaries = TimelineEvent.objects.filter(kind=EventKind.PAYMENT_PLAN).values_list("summary", flat=True)
    assert any(s.startswith("Payment plan reduced from EUR 1,200.00 to EUR 950.00 by credit note ERP-CN-77 "
                            "on INV-2:") for s in summaries)


def test_a_credit_note_that_leaves_a_plan_nothing_to_pay_completes_it(
    client, manager, collector, customer, invoices
):
    plan = workspace.plan_propose(
        customer=customer, actor=collector, invoices=invoices[:1], on=TODAY,
        instalments=[(dt.date(2025, 8, 20), Decimal("250.00")), (dt.date(2025, 9, 20), Decimal("250.00"))],
    )
    client.force_login(manager)

    client.post(credit_url(customer), form(invoices[0], amount="500.00"))

    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED
    assert not customer.dunning_pauses.filter(plan=plan, lifted_at__isnull=True).exists()


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"amount": "500.01"}, "amount", "A credit note on INV-1 takes off at most EUR 500.00, what is open."),
    ({"amount": "0.00"}, "amount", "Ensure this value is greater than or equal to 0.01."),
    ({"issued_on": "2025-08-06"}, "issued_on", "A credit note cannot be issued after today."),
    ({"issued_on": "2025-05-31"}, "issued_on",
     "INV-1 was issued on 1 Jun 2025: a credit note on it cannot be dated before that."),
    ({"reason": ""}, "reason", "This field is required."),
    ({"invoice": "INV-3", "amount": "100.50"}, "amount",
     "JPY has no places after the point: write 100 or 101, not 100.50."),
])
def test_a_wrong_credit_note_is_refused_with_a_clear_message_and_changes_nothing(
    client, manager, customer, invoices, fields, field, message
):
    if fields.get("invoice") == "INV-3":
        fields["invoice"] = invoices[2].pk
    client.force_login(manager)
    before = state()

    response = client.post(credit_url(customer), form(invoices[0], **fields), headers=HTMX)

    assert response.status_code == 422
    assert response.context["form"].errors[field] == [message]
    assert state() == before


def test_a_credit_note_number_recorded_before_is_refused(client, manager, customer, invoices):
    client.force_login(manager)
    client.post(credit_url(customer), form(invoices[0]))
    before = state()

    response = client.post(credit_url(customer), form(invoices[1]), headers=HTMX)

    assert response.status_code == 422
    assert response.context["form"].errors["number"] == [
        "Credit note ERP-CN-77 is recorded already (on INV-1, EUR 200.00 issued on 4 Aug 2025)."]
    assert state() == before


@pytest.mark.parametrize("number", ["erp-cn-77", " Erp-Cn-77 "])
@pytest.mark.parametrize("on_account", [False, True], ids=["on-an-invoice", "on-account"])
def test_a_credit_note_number_recorded_before_in_other_capitals_is_refused(
    client, manager, customer, invoices, number, on_account
):
    """The ERP's number is one document however it is typed: a second note
    under it in small letters would credit the customer twice."""
    client.force_login(manager)
    client.post(credit_url(customer), form(invoices[0]))
    before = state()

    fields = {"number": number, "currency": "EUR"} if on_account else {"number": number}
    response = client.post(credit_url(customer), form(None if on_account else invoices[1], **fields),
                           headers=HTMX)

    assert response.status_code == 422
    assert response.context["form"].errors["number"] == [
        "Credit note ERP-CN-77 is recorded already (on INV-1, EUR 200.00 issued on 4 Aug 2025)."]
    assert state() == before


def test_the_database_holds_one_credit_note_per_number_whatever_its_capitals(customer, invoices):
    workspace.credit_note_record(customer=customer, actor=None, invoice=invoices[0], amount=Decimal("200.00"),
                                 reason="Two crates returned", issued_on=TODAY, number="ERP-CN-77")

    with pytest.raises(IntegrityError), transaction.atomic():
        CreditNote.objects.create(number="erp-cn-77", customer=customer, issued_on=TODAY, currency="EUR",
                                  amount=Decimal("10.00"))


@pytest.mark.django_db(transaction=True)
def test_two_managers_recording_one_erp_number_at_once_the_second_is_told_it_is_recorded(
    client, manager, other_manager, customer, invoices, make_customer, make_invoice
):
    """The first manager's note is written but not yet committed when the
    second's, on another account, is checked: the second waits for the number
    and is then refused as if it had come later, nothing of it kept."""
    beta = make_customer(name="Beta Bau")
    theirs = make_invoice(beta, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1), amount="300.00",
                          number="INV-B1")
    client.force_login(other_manager)

    def first() -> None:
        workspace.credit_note_record(customer=customer, actor=manager, invoice=invoices[0],
                                     amount=Decimal("200.00"), reason="Two crates returned", issued_on=TODAY,
                                     number="ERP-CN-77")

    with done_by_another_worker(first):
        second = in_another_thread(lambda: client.post(credit_url(beta), form(theirs), headers=HTMX))
        someone_waits_for_a_lock()  # the second, for the number the first holds
    response = second()

    assert response.status_code == 422
    assert response.context["form"].errors["number"] == [
        "Credit note ERP-CN-77 is recorded already (on INV-1, EUR 200.00 issued on 5 Aug 2025)."]
    assert list(CreditNote.objects.values_list("number", "customer")) == [("ERP-CN-77", customer.pk)]
    theirs.refresh_from_db()
    assert (theirs.open_amount, theirs.allocations.count()) == (Decimal("300.00"), 0)
    assert not TimelineEvent.objects.filter(customer=beta, kind=EventKind.CREDIT_NOTE).exists()


def test_a_credit_note_on_an_invoice_settled_since_the_form_opened_is_refused(
    client, manager, customer, invoices
):
    workspace.payment_record(customer=customer, amount=Decimal("500.00"), currency="EUR", received_on=TODAY,
                             allocations=[(invoices[0], Decimal("500.00"))])
    client.force_login(manager)
    before = state()

    response = client.post(credit_url(customer), form(invoices[0]), headers=HTMX)

    assert response.status_code == 422
    assert "no longer open on this account" in response.context["form"].errors["invoice"][0]
    assert state() == before


def test_the_service_refuses_an_invoice_with_nothing_open(manager, customer, invoices):
    workspace.payment_record(customer=customer, amount=Decimal("500.00"), currency="EUR", received_on=TODAY,
                             allocations=[(invoices[0], Decimal("500.00"))])
    before = state()

    with pytest.raises(ValidationError) as refused:
        workspace.credit_note_record(customer=customer, actor=manager, invoice=invoices[0],
                                     amount=Decimal("100.00"), reason="Goodwill", issued_on=TODAY)

    assert refused.value.message_dict == {"invoice": [
        "Invoice INV-1 is paid in full: nothing is open to credit."]}
    assert state() == before


def test_a_credit_note_on_an_invoice_under_dispute_is_given_by_settling_the_dispute(
    client, manager, customer, invoices
):
    workspace.dispute_open(customer=customer, actor=manager, invoice=invoices[0], on=TODAY,
                           reason=DisputeReason.QUALITY, description="Scratched")
    client.force_login(manager)
    before = state()

    response = client.post(credit_url(customer), form(invoices[0]), headers=HTMX)

    assert response.status_code == 422
    assert response.context["form"].errors["invoice"] == [
        "INV-1 has an open dispute: give the credit note by resolving the dispute, so that it ends too."]
    assert state() == before


def test_a_credit_note_on_no_invoice_is_kept_on_account_until_set_against_one(
    client, manager, customer, invoices
):
    """A volume rebate, goodwill: nothing comes off an invoice yet; notices
    offer it for deduction, and it is set against invoices when the customer
    says which."""
    client.force_login(manager)

    response = client.post(credit_url(customer), form(None, invoice="", currency="EUR", amount="150.00"),
                           follow=True)

    note = CreditNote.objects.get()
    assert (note.invoice, note.amount, note.currency, note.issued_on) == (
        None, Decimal("150.00"), "EUR", dt.date(2025, 8, 4))
    assert not Allocation.objects.exists()
    assert dict(Invoice.objects.values_list("number", "open_amount"))["INV-1"] == Decimal("500.00")
    event = TimelineEvent.objects.get(customer=customer, kind=EventKind.CREDIT_NOTE)
    assert event.summary == "Credit note ERP-CN-77 for EUR 150.00 on account: Two crates returned"
    page = response.content.decode()
    assert "Credit note ERP-CN-77 for EUR 150.00 recorded on account" in page
    assert "Credits not yet set against an invoice" in page

    workspace.credit_apply(customer=customer, actor=manager, credit=note, invoices=[invoices[1]])
    assert Invoice.objects.get(number="INV-2").open_amount == Decimal("550.00")


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"currency": ""}, "currency", "Give the currency of a credit note kept on account."),
    ({"currency": "CHF"}, "currency", "Select a valid choice. CHF is not one of the available choices."),
    ({"currency": "JPY", "amount": "100.50"}, "amount",
     "JPY has no places after the point: write 100 or 101, not 100.50."),
])
def test_a_wrong_credit_note_on_account_is_refused_and_changes_nothing(
    client, manager, customer, invoices, fields, field, message
):
    client.force_login(manager)
    before = state()

    response = client.post(credit_url(customer), form(None, invoice="", **fields), headers=HTMX)

    assert response.status_code == 422
    assert response.context["form"].errors[field] == [message]
    assert state() == before


def test_a_credit_on_account_above_the_collectors_limit_is_a_managers(collector, manager, customer, invoices):
    with pytest.raises(ValidationError, match="is a manager's decision"):
        workspace.credit_note_on_account(customer=customer, actor=collector, currency="EUR",
                                         amount=Decimal("100000.00"), reason="Goodwill", issued_on=TODAY)
    assert not CreditNote.objects.exists()
    workspace.credit_note_on_account(customer=customer, actor=manager, currency="EUR",
                                     amount=Decimal("100000.00"), reason="Goodwill", issued_on=TODAY)
    assert CreditNote.objects.get().number.startswith("CN-2025-")


def test_our_own_series_passes_over_a_number_an_erp_note_took(client, manager, customer, invoices):
    client.force_login(manager)
    client.post(credit_url(customer), form(invoices[0], number="CN-2025-00001", amount="50.00"))

    response = client.post(credit_url(customer), form(invoices[1], number="", amount="60.00"))

    assert response.status_code == 302
    assert sorted(CreditNote.objects.values_list("number", "amount")) == [
        ("CN-2025-00001", Decimal("50.00")), ("CN-2025-00002", Decimal("60.00"))]


def test_collectors_and_viewers_cannot_record_a_credit_note(client, collector, viewer, customer, invoices):
    before = state()
    for user in (collector, viewer):
        client.force_login(user)
        assert client.get(credit_url(customer)).status_code == 403
        assert client.post(credit_url(customer), form(invoices[0])).status_code == 403
    assert state() == before


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_recording_a_credit_note_answers_only_get_and_post(client, manager, customer, invoices, method):
    client.force_login(manager)
    assert getattr(client, method)(credit_url(customer)).status_code == 405


def test_the_account_page_offers_managers_to_record_a_credit_note(
    client, manager, collector, customer, invoices
):
    account_page = reverse("customers:detail", args=[customer.pk])
    client.force_login(manager)
    assert credit_url(customer) in client.get(account_page).content.decode()
    client.force_login(collector)
    assert credit_url(customer) not in client.get(account_page).content.decode()


def test_the_admin_shows_credit_notes_but_neither_enters_changes_nor_deletes_them(client, customer, invoices):
    """Entered in the admin, a credit note took nothing off its invoice and
    wrote nothing on the timeline; changed there, its amount no longer matched
    what it took off."""
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    note = workspace.credit_note_record(customer=customer, actor=None, invoice=invoices[0],
                                        amount=Decimal("200.00"), reason="Returned", issued_on=TODAY)
    before = state()
    fields = {"number": "CN-ADMIN-1", "customer": customer.pk, "invoice": invoices[1].pk,
              "issued_on": "2025-08-05", "currency": "EUR", "amount": "700.00", "reason": "Returned",
              "allocations-TOTAL_FORMS": "0", "allocations-INITIAL_FORMS": "0"}

    assert client.post(reverse("admin:collections_creditnote_add"), fields).status_code == 403
    change = reverse("admin:collections_creditnote_change", args=[note.pk])
    assert client.post(change, {**fields, "number": note.number, "amount": "5.00"}).status_code == 403
    shown = client.get(change)
    assert shown.status_code == 200 and 'name="amount"' not in shown.content.decode()  # read-only
    delete = reverse("admin:collections_creditnote_delete", args=[note.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert state() == before


def test_a_credit_note_dated_before_the_last_payment_settles_the_invoice_on_the_payment_s_day(
    client, manager, customer, invoices
):
    """The customer paid EUR 300.00 of INV-1 on 1 Aug, a month late; the ERP's
    credit note for the rest is dated 20 Jul and recorded today. INV-1 was
    settled when its last part came, on 1 Aug: taking the note's day would
    have the customer pay 12 days sooner than it did."""
    workspace.payment_record(customer=customer, amount=Decimal("300.00"), currency="EUR",
                             received_on=dt.date(2025, 8, 1), allocations=[(invoices[0], Decimal("300.00"))],
                             reference="BANK-3")
    client.force_login(manager)

    client.post(credit_url(customer), form(invoices[0], issued_on="2025-07-20"))

    invoices[0].refresh_from_db()
    assert (invoices[0].open_amount, invoices[0].status, invoices[0].settled_on) == (
        Decimal("0.00"), InvoiceStatus.PAID, dt.date(2025, 8, 1))


def paid_events(customer) -> list[tuple[str, dict]]:
    return list(TimelineEvent.objects.filter(customer=customer, kind=EventKind.INVOICE_PAID).order_by("pk")
                .values_list("summary", "details"))


def test_an_invoice_a_credit_note_settles_is_paid_in_full_on_the_timeline_as_after_a_payment(
    client, manager, customer, invoices
):
    client.force_login(manager)

    client.post(credit_url(customer), form(invoices[0], amount="500.00"))

    # Issued on 4 Aug, 34 days after INV-1 was due.
    assert paid_events(customer) == [("Invoice INV-1 paid in full, 34 days late",
                                      {"number": "INV-1", "days_late": 34})]
    event = TimelineEvent.objects.get(customer=customer, kind=EventKind.INVOICE_PAID)
    # Found when the timeline is filtered by the invoice.
    linked = TimelineEventInvoice.objects.filter(event=event).values_list("invoice__number", flat=True)
    assert list(linked) == ["INV-1"]


def test_a_credit_note_that_leaves_something_open_says_nothing_is_paid_in_full(
    client, manager, customer, invoices
):
    client.force_login(manager)

    client.post(credit_url(customer), form(invoices[0], amount="499.99"))

    assert paid_events(customer) == []


@pytest.mark.parametrize("outcome, amount", [("credit_note", "500.00"), ("corrected_invoice", "200.00")])
def test_a_dispute_settled_by_a_credit_note_or_a_correction_leaving_nothing_open_is_paid_in_full(
    manager, customer, invoices, outcome, amount
):
    workspace.payment_record(customer=customer, amount=Decimal("200.00"), currency="EUR",
                             received_on=dt.date(2025, 7, 28), allocations=[(invoices[1], Decimal("200.00"))],
                             reference="BANK-9")
    invoice = invoices[0] if outcome == "credit_note" else invoices[1]
    dispute = workspace.dispute_open(customer=customer, actor=manager, invoice=invoice, on=TODAY,
                                     reason=DisputeReason.PRICE, description="Wrong price")

    workspace.dispute_resolve(dispute=dispute, actor=manager, outcome=outcome, note="Agreed",
                              amount=Decimal(amount), on=TODAY)

    late = (TODAY - invoice.due_date).days
    assert paid_events(customer) == [(f"Invoice {invoice.number} paid in full, {late} days late",
                                      {"number": invoice.number, "days_late": late})]
