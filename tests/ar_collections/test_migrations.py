"""Data migrations fill in what earlier versions did not record."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Sum

from ar_collections import workspace
from ar_collections.models import (
    Allocation,
    CreditNote,
    Dispute,
    DisputeOutcome,
    DisputeReason,
    DunningAction,
    DunningStep,
    Invoice,
    LateCharge,
    Payment,
    StepFee,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from customers.models import ReminderChannel, Segment
from tests.ar_collections.conftest import DUE
from tests.ar_collections.test_delivery_letters import to_the_fee_letter

BEFORE_CREDIT_LIMIT = ("collections", "0008_timeline_invoice_links")
CREDIT_LIMIT = ("collections", "0009_outbox_and_credit_limit")


def _migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([target])


def _model_at(target: tuple[str, str], name: str):
    """The model as the database has it at `target`: today's has columns added since."""
    return MigrationExecutor(connection).loader.project_state(target).apps.get_model("collections", name)


def _migrate_to_latest() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_disputes_resolved_before_the_credit_limit_count_what_they_took_off(make_account, manager):
    account = make_account()
    small, large = account.invoices.order_by("total_amount")  # EUR 500, EUR 700
    on = DUE + dt.timedelta(days=20)
    resolved = {}
    for invoice, outcome, amount in [(small, DisputeOutcome.CREDIT_NOTE, "120.00"),
                                     (large, DisputeOutcome.CORRECTED_INVOICE, "650.00")]:
        dispute = workspace.dispute_open(customer=account, actor=manager, invoice=invoice, on=on,
                                         reason=DisputeReason.PRICE, description="Contract price")
        workspace.dispute_resolve(dispute=dispute, actor=manager, outcome=outcome, amount=Decimal(amount),
                                  note="Agreed", on=on)
        resolved[outcome] = dispute.pk
    rejected = workspace.dispute_open(customer=account, actor=manager, invoice=small, on=on,
                                      reason=DisputeReason.OTHER, description="Again")
    workspace.dispute_resolve(dispute=rejected, actor=manager, outcome=DisputeOutcome.REJECTED, note="No",
                              on=on)

    # As an installation of the previous version has them: no taken_off_amount column.
    try:
        _migrate(BEFORE_CREDIT_LIMIT)
        _migrate(CREDIT_LIMIT)
    finally:
        _migrate_to_latest()  # whatever comes after, for the tests that follow

    taken_off = dict(Dispute.objects.values_list("pk", "taken_off_amount"))
    assert taken_off == {
        resolved[DisputeOutcome.CREDIT_NOTE]: Decimal("120.00"),  # the credit note
        resolved[DisputeOutcome.CORRECTED_INVOICE]: Decimal("50.00"),  # 700 corrected to 650
        rejected.pk: Decimal("0.00"),
    }


BEFORE_CHARGES_PAID = ("collections", "0018_commitments_count_later_money")
CHARGES_PAID = ("collections", "0019_late_charges_paid_like_invoices")


@pytest.mark.django_db(transaction=True)
def test_charges_from_before_they_could_be_paid_are_owed_in_full(make_account, plan_and_deliver):
    account = make_account(Segment.SYSTEMATIC_LATE, reminder_channel=ReminderChannel.LETTER)
    to_the_fee_letter(plan_and_deliver)  # step 3's letter charges the EUR 40.00 fee
    assert LateCharge.objects.filter(customer=account).exists()

    # As an installation of the previous version has them: no open_amount column.
    try:
        _migrate(BEFORE_CHARGES_PAID)
        _migrate(CHARGES_PAID)
    finally:
        _migrate_to_latest()

    charges = LateCharge.objects.filter(customer=account)
    assert [(c.amount, c.open_amount) for c in charges] == [(Decimal("40.00"), Decimal("40.00"))]
    assert charges.standing().count() == 1


@pytest.mark.django_db(transaction=True)
def test_going_back_before_charges_could_be_paid_puts_that_money_on_account(make_account, plan_and_deliver):
    account = make_account(Segment.SYSTEMATIC_LATE, reminder_channel=ReminderChannel.LETTER)
    to_the_fee_letter(plan_and_deliver)
    DunningAction.objects.filter(customer=account).update(printed_at=dt.datetime(2026, 3, 14, tzinfo=dt.UTC))
    invoices = list(account.invoices.filter(status="open"))
    workspace.payment_record(customer=account, amount=Decimal("1240.00"), currency="EUR",
                             received_on=DUE + dt.timedelta(days=13),
                             allocations=[(i, i.open_amount) for i in invoices], reference="BANK-1")
    assert Allocation.objects.filter(charge__isnull=False).count() == 1  # EUR 40.00 of the fee

    try:
        _migrate(BEFORE_CHARGES_PAID)
        # Without the columns added since (the bank id's key), and its
        # allocations as that version had them: today's manager reads only
        # those that stand, by a column (their reversal) added since.
        payment = Payment.objects.defer("bank_key", "bank_id_released").get(customer=account)
        allocated = _model_at(BEFORE_CHARGES_PAID, "Allocation").objects.filter(
            payment_id=payment.pk).aggregate(total=Sum("amount"))["total"]
        on_account = payment.amount - allocated
    finally:
        _migrate_to_latest()

    assert on_account == Decimal("40.00")


BEFORE_STEP_FEES = ("collections", "0026_action_sweep_after")
STEP_FEES = ("collections", "0027_step_fees_per_currency")


def _step_fee_columns(step_id: int) -> tuple[Decimal, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT late_fee_amount, late_fee_currency FROM collections_dunningstep WHERE id = %s",
                       [step_id])
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
def test_a_step_s_one_fee_becomes_its_fee_in_that_currency_and_back(default_ladders):
    letter = DunningStep.objects.get(policy__segment=Segment.SYSTEMATIC_LATE, position=3)  # EUR 40.00
    StepFee.objects.filter(step=letter).update(currency="GBP", amount=Decimal("35.00"))
    several = DunningStep.objects.get(policy__segment=Segment.PROMPT, position=2)
    StepFee.objects.bulk_create([StepFee(step=several, currency=c, amount=Decimal(a))
                                 for c, a in (("USD", "45.00"), ("EUR", "40.00"), ("GBP", "35.00"))])
    without = DunningStep.objects.get(policy__segment=Segment.PROMPT, position=1)

    try:
        # As an installation of the previous version has them: one fee column pair per step.
        _migrate(BEFORE_STEP_FEES)
        before = {step.pk: _step_fee_columns(step.pk) for step in (letter, several, without)}
        _migrate(STEP_FEES)
    finally:
        _migrate_to_latest()

    assert before == {
        letter.pk: (Decimal("35.00"), "GBP"),
        # The previous version knows one fee a step: the default currency's is kept.
        several.pk: (Decimal("40.00"), "EUR"),
        without.pk: (Decimal("0.00"), "EUR"),
    }
    fees = {step.pk: list(step.fees.values_list("currency", "amount")) for step in (letter, several, without)}
    assert fees == {letter.pk: [("GBP", Decimal("35.00"))], several.pk: [("EUR", Decimal("40.00"))],
                    without.pk: []}


BEFORE_MOOT_SKIPPED = ("collections", "0027_step_fees_per_currency")
MOOT_SKIPPED = ("collections", "0028_moot_letters_not_carried_out")


@pytest.mark.django_db(transaction=True)
def test_letters_an_earlier_version_took_out_of_the_queue_become_steps_not_carried_out_quietly(
    make_account, plan_and_deliver
):
    from ar_collections.delivery import letters_withdraw_moot
    from ar_collections.models import ActionStatus, Invoice, InvoiceStatus
    from customers.models import TimelineEvent

    account = make_account(Segment.SYSTEMATIC_LATE, reminder_channel=ReminderChannel.LETTER)
    for day in (-3, 3, 12):
        plan_and_deliver(DUE + dt.timedelta(days=day))
    letters = DunningAction.objects.filter(customer=account, letter_pdf__gt="", status=ActionStatus.DONE)
    assert letters.exists()
    # As the previous version left them: paid before the post, out of the
    # queue (its sweep took them out), still marked done.
    Invoice.objects.filter(customer=account).update(status=InvoiceStatus.PAID, open_amount=0,
                                                     settled_on=DUE + dt.timedelta(days=13))
    written = set(letters.values_list("pk", flat=True))
    entries = TimelineEvent.objects.filter(customer=account).count()

    try:
        _migrate(BEFORE_MOOT_SKIPPED)
        _migrate(MOOT_SKIPPED)
    finally:
        _migrate_to_latest()

    after = DunningAction.objects.filter(pk__in=written)
    assert {a.status for a in after} == {ActionStatus.SKIPPED}
    assert {a.skip_reason for a in after} == {
        "withdrawn from the print queue: everything it lists was settled before it was posted "
        "(taken out of the queue by an earlier version)"
    }
    # Nothing on the timeline: the earlier version said what it did then, and
    # the first sweep after the upgrade finds nothing left to withdraw.
    assert TimelineEvent.objects.filter(customer=account).count() == entries
    assert letters_withdraw_moot() == 0
    assert TimelineEvent.objects.filter(customer=account).count() == entries


BEFORE_BANK_KEY = ("collections", "0032_instalment_held_for")


@pytest.mark.django_db(transaction=True)
def test_payments_recorded_before_bank_ids_were_compared_get_their_key_and_keep_their_id(customer):
    payment = workspace.payment_record(customer=customer, amount=Decimal("500.00"), currency="EUR",
                                       received_on=DUE, allocations=[], reference="R-1")
    try:
        _migrate(BEFORE_BANK_KEY)
        with connection.cursor() as cursor:
            cursor.execute("UPDATE collections_payment SET bank_reference = %s WHERE id = %s",
                           ["ab12 cd", payment.pk])
    finally:
        _migrate_to_latest()

    assert Payment.objects.filter(pk=payment.pk).values_list("bank_reference", "bank_key").get() == (
        "ab12 cd", "AB12CD")


BEFORE_BANK_ID_ONCE = ("collections", "0035_late_payment_policy_name")
BANK_ID_ONCE = ("collections", "0036_payment_bank_id_unique")


@pytest.mark.django_db(transaction=True)
def test_payments_sharing_a_bank_id_stop_the_upgrade_named_and_kept_as_they_were(customer, make_customer):
    beta = make_customer(name="Beta Bau")
    first = workspace.payment_record(customer=customer, amount=Decimal("100.00"), currency="EUR",
                                     received_on=DUE, allocations=[], reference="R-1",
                                     bank_reference="AB12 CD")
    try:
        _migrate(BEFORE_BANK_ID_ONCE)
        # As two imports at once could record them before: one bank entry twice.
        # The row only: today's services read every table as the latest
        # migration leaves it, and a column added since is missing here.
        second = _model_at(BEFORE_BANK_ID_ONCE, "Payment").objects.create(
            customer_id=beta.pk, amount=Decimal("100.00"), currency="EUR", received_on=DUE, reference="R-1",
            bank_reference="ab12cd")
        with pytest.raises(CommandError) as refused:
            _migrate(BANK_ID_ONCE)
        assert str(refused.value) == (
            "Payments share a bank id, which is one bank entry's: one payment each. Nothing was changed. "
            "Keep the payment that is the bank's entry and reverse or correct the others, then migrate "
            "again:\n"
            f"  bank id AB12CD: payment {first.pk} on account {customer.account_number}, EUR 100.00 received "
            f"2026-03-02 (bank_reference 'AB12 CD'); payment {second.pk} on account {beta.account_number}, "
            "EUR 100.00 received 2026-03-02 (bank_reference 'ab12cd')")
        assert sorted(Payment.objects.values_list("pk", "bank_key")) == [(first.pk, "AB12CD"),
                                                                         (second.pk, "AB12CD")]
        # Told apart again, the upgrade goes through and holds them so.
        Payment.objects.filter(pk=second.pk).update(bank_reference="AB12CE")
        _migrate(BANK_ID_ONCE)
        with pytest.raises(IntegrityError), transaction.atomic():
            Payment.objects.filter(pk=second.pk).update(bank_reference="ab 12 cd")
    finally:
        _migrate_to_latest()


BEFORE_CREDIT_NOTE_ONCE = ("collections", "0051_paper_withdrawn")
CREDIT_NOTE_ONCE = ("collections", "0052_records_once")


@pytest.mark.django_db(transaction=True)
def test_credit_notes_sharing_a_number_in_other_capitals_stop_the_upgrade_named_and_kept_as_they_were(
    customer
):
    try:
        _migrate(BEFORE_CREDIT_NOTE_ONCE)
        # As an earlier version let a manager record them: one ERP number twice.
        first, second = (CreditNote.objects.create(number=number, customer=customer, issued_on=DUE,
                                                   currency="EUR", amount=Decimal("150.00"))
                         for number in ("CN-TEST-1", "Cn-Test-1"))
        with pytest.raises(CommandError) as refused:
            _migrate(CREDIT_NOTE_ONCE)
        assert str(refused.value) == (
            "Credit notes share a number, which is one ERP document's: one note each. Nothing was changed. "
            "Keep the note that is the ERP's document and correct or remove the others, then migrate "
            "again:\n"
            f"  number CN-TEST-1: credit note {first.pk} 'CN-TEST-1' on account {customer.account_number}, "
            f"EUR 150.00 issued 2026-03-02; credit note {second.pk} 'Cn-Test-1' on account "
            f"{customer.account_number}, EUR 150.00 issued 2026-03-02")
        assert sorted(CreditNote.objects.values_list("number", flat=True)) == ["CN-TEST-1", "Cn-Test-1"]
        # Told apart again, the upgrade goes through and holds them so.
        CreditNote.objects.filter(pk=second.pk).update(number="CN-TEST-2")
        _migrate(CREDIT_NOTE_ONCE)
        with pytest.raises(IntegrityError), transaction.atomic():
            CreditNote.objects.filter(pk=second.pk).update(number="cn-test-1")
    finally:
        _migrate_to_latest()


BEFORE_BANK_ID_LETTERS = ("collections", "0052_records_once")
BANK_ID_LETTERS = ("collections", "0053_payment_bank_key_punctuation")


@pytest.mark.django_db(transaction=True)
def test_payments_whose_bank_ids_differ_only_in_punctuation_stop_the_upgrade_named_and_kept_as_they_were(
    customer, make_customer
):
    beta = make_customer(name="Beta Bau")
    try:
        _migrate(BEFORE_BANK_ID_LETTERS)
        # As the earlier rule let them be recorded: one bank entry twice,
        # told apart by a hyphen. The row only, as in the tests above.
        then = _model_at(BEFORE_BANK_ID_LETTERS, "Payment")
        first, second = (then.objects.create(customer_id=account.pk, amount=Decimal("100.00"), currency="EUR",
                                             received_on=DUE, reference="R-1", bank_reference=reference)
                         for account, reference in ((customer, "BANK 4000"), (beta, "bank-4000")))
        other = then.objects.create(customer_id=beta.pk, amount=Decimal("50.00"), currency="EUR",
                                    received_on=DUE, reference="R-2", bank_reference="BANK-4001")
        with pytest.raises(CommandError) as refused:
            _migrate(BANK_ID_LETTERS)
        assert str(refused.value) == (
            "Payments share a bank id, which is one bank entry's: one payment each. Bank ids are now "
            "compared without their spaces and punctuation. Nothing was changed. "
            "Keep the payment that is the bank's entry and reverse or correct the others, then migrate "
            "again:\n"
            f"  bank id BANK4000: payment {first.pk} on account {customer.account_number}, EUR 100.00 "
            f"received 2026-03-02 (bank_reference 'BANK 4000'); payment {second.pk} on account "
            f"{beta.account_number}, EUR 100.00 received 2026-03-02 (bank_reference 'bank-4000')")
        assert sorted(Payment.objects.values_list("pk", "bank_key")) == [
            (first.pk, "BANK4000"), (second.pk, "BANK-4000"), (other.pk, "BANK-4001")]
        # Told apart again, the upgrade goes through, keys every payment
        # anew and holds them so.
        Payment.objects.filter(pk=second.pk).update(bank_reference="BANK-4002")
        _migrate(BANK_ID_LETTERS)
        assert sorted(Payment.objects.values_list("pk", "bank_reference", "bank_key")) == [
            (first.pk, "BANK 4000", "BANK4000"), (second.pk, "BANK-4002", "BANK4002"),
            (other.pk, "BANK-4001", "BANK4001")]
        with pytest.raises(IntegrityError), transaction.atomic():
            Payment.objects.filter(pk=second.pk).update(bank_reference="bank/4000")
    finally:
        _migrate_to_latest()


BEFORE_BANK_ID_RELEASED = ("collections", "0066_receivables_import_workbook")


@pytest.mark.django_db(transaction=True)
def test_payments_recalled_before_let_go_of_their_bank_id_and_those_bounced_keep_it(customer):
    recalled, bounced = (
        workspace.payment_record(customer=customer, amount=Decimal("100.00"), currency="EUR", received_on=DUE,
                                 allocations=[], reference=reference, bank_reference=reference)
        for reference in ("BANK-1", "BANK-2"))
    for payment, reason in ((recalled, "recalled"), (bounced, "bounced_cheque")):
        workspace.payment_reverse(payment=payment, actor=customer.collector, reason=reason, on=DUE)
    try:
        _migrate(BEFORE_BANK_ID_RELEASED)
    finally:
        _migrate_to_latest()

    assert sorted(Payment.objects.values_list("bank_reference", "bank_id_released")) == [
        ("BANK-1", True), ("BANK-2", False)]


BEFORE_ALLOCATIONS_KEPT = ("collections", "0067_payment_bank_id_released")


@pytest.mark.django_db(transaction=True)
def test_payments_reversed_before_get_their_allocations_back_marked_as_reversed(customer, make_invoice):
    first, second = (make_invoice(customer, issued=DUE - dt.timedelta(days=30), due=DUE, amount=amount)
                     for amount in ("500.00", "300.00"))
    payment = workspace.payment_record(customer=customer, amount=Decimal("600.00"), currency="EUR",
                                       received_on=DUE, allocations=[(first, Decimal("500.00")),
                                                                     (second, Decimal("100.00"))])
    kept = workspace.payment_record(customer=customer, amount=Decimal("50.00"), currency="EUR",
                                    received_on=DUE, allocations=[(second, Decimal("50.00"))])
    before = sorted(Allocation.objects.filter(payment=payment).values_list(
        "invoice_id", "amount", "allocated_on"))
    reversal = workspace.payment_reverse(payment=payment, actor=customer.collector, reason="bounced_cheque",
                                         on=DUE + dt.timedelta(days=3))
    try:
        _migrate(BEFORE_ALLOCATIONS_KEPT)
        # As that version had them: a reversed payment's allocations gone, the others standing.
        assert list(_model_at(BEFORE_ALLOCATIONS_KEPT, "Allocation").objects.values_list(
            "payment_id", "amount")) == [(kept.pk, Decimal("50.00"))]
    finally:
        _migrate_to_latest()

    assert list(Allocation.objects.values_list("payment_id", "amount")) == [(kept.pk, Decimal("50.00"))]
    assert sorted(Allocation.ledger.filter(payment=payment, reversal=reversal).values_list(
        "invoice_id", "amount", "allocated_on")) == before
    assert len(before) == 2


BEFORE_COVERING_FOR = ("collections", "0069_allocations_of_reversals_kept")


@pytest.mark.django_db(transaction=True)
def test_open_items_a_stand_in_holds_for_the_accounts_collector_become_the_collectors_again_once_back(
    customer, collector, other_collector
):
    def item(key: str, title: str, **fields) -> WorkItem:
        return WorkItem.objects.create(key=key, kind=WorkKind.CALL, customer=customer, title=title,
                                       due_on=DUE, assignee=other_collector, **fields)

    covered = item("covered", "Call Acme (covering for carla)")
    done = item("done", "Call Acme (covering for carla)", status=WorkStatus.DONE)
    someone_else = item("someone-else", "Call Acme (covering for maria)")
    handed = item("handed", "Call Acme")
    try:
        _migrate(BEFORE_COVERING_FOR)
    finally:
        _migrate_to_latest()

    assert dict(WorkItem.objects.values_list("pk", "covering_for")) == {
        covered.pk: collector.pk, done.pk: None, someone_else.pk: None, handed.pk: None}


@pytest.mark.django_db(transaction=True)
def test_the_import_permission_is_renamed_for_the_accounts_it_imports_too():
    from django.contrib.auth.models import Permission

    permission = Permission.objects.get(codename="import_receivables")
    try:
        _migrate(("collections", "0071_ladder_stamp"))
        assert Permission.objects.get(pk=permission.pk).name == (
            "Can import invoices and payments from the ERP")
    finally:
        _migrate_to_latest()
    assert Permission.objects.get(pk=permission.pk).name == (
        "Can import invoices, payments and customer accounts from the ERP")


@pytest.mark.django_db(transaction=True)
def test_items_back_from_cover_lose_who_covered_from_their_title_and_open_ones_say_it_beside_it(
    customer, collector, other_collector
):
    def item(key: str, title: str, **fields) -> WorkItem:
        return WorkItem.objects.create(key=key, kind=WorkKind.CALL, customer=customer, title=title,
                                       due_on=DUE, assignee=collector, **fields)

    back = item("back", "Call Acme (back from otto, who covered)")
    done = item("done", "Call Acme (back from otto, who covered)", status=WorkStatus.DONE)
    nobody = item("nobody", "Call Acme (back from olga, who covered)")
    plain = item("plain", "Call Acme")
    try:
        _migrate(("collections", "0073_wording_pdf"))
    finally:
        _migrate_to_latest()

    assert {pk: (title, back_from) for pk, title, back_from in
            WorkItem.objects.values_list("pk", "title", "back_from")} == {
        back.pk: ("Call Acme", other_collector.pk), done.pk: ("Call Acme", None),
        nobody.pk: ("Call Acme", None), plain.pk: ("Call Acme", None)}


@pytest.mark.django_db(transaction=True)
def test_allocations_from_before_the_application_day_was_kept_count_as_applied_on_their_own_day(
    customer, make_invoice, manager
):
    # The day money on account was set against an invoice was not recorded: each row
    # is taken as applied on its own day, so every past figure reads as it did.
    invoice = make_invoice(customer, issued=DUE - dt.timedelta(days=30), due=DUE, amount="500.00")
    payment = workspace.payment_record(customer=customer, amount=Decimal("200.00"), currency="EUR",
                                       received_on=DUE, allocations=[])
    workspace.credit_apply(customer=customer, actor=manager, credit=payment, invoices=[invoice],
                           on=DUE + dt.timedelta(days=10))
    assert list(Allocation.objects.values_list("allocated_on", "applied_on")) == [
        (DUE, DUE + dt.timedelta(days=10))]
    try:
        _migrate(("collections", "0077_collection_rules_row"))
    finally:
        _migrate_to_latest()

    assert list(Allocation.objects.values_list("allocated_on", "applied_on")) == [(DUE, DUE)]


BEFORE_APPLIED_ON = ("collections", "0077_collection_rules_row")
APPLIED_ON = ("collections", "0078_allocation_applied_on")


@pytest.mark.django_db(transaction=True)
def test_going_back_before_charges_were_paid_once_a_day_makes_a_payments_parts_of_a_charge_one_row(
    make_account, plan_and_deliver
):
    # EUR 15.00 of the fee on one day, 25.00 more on a later one: one row again, as
    # that version kept them, counted from the earlier day.
    account = make_account(Segment.SYSTEMATIC_LATE, reminder_channel=ReminderChannel.LETTER)
    to_the_fee_letter(plan_and_deliver)
    fee = LateCharge.objects.get(customer=account)
    first, later = DUE + dt.timedelta(days=13), DUE + dt.timedelta(days=20)
    payment = Payment.objects.create(customer=account, received_on=first, currency="EUR",
                                     amount=Decimal("100.00"), reference="BANK-1")
    for amount, on in [("15.00", first), ("25.00", later)]:
        Allocation.objects.create(payment=payment, charge=fee, amount=Decimal(amount), allocated_on=first,
                                  applied_on=on)
    try:
        _migrate(APPLIED_ON)
        rows = list(_model_at(APPLIED_ON, "Allocation").objects.values_list(
            "payment_id", "charge_id", "amount", "allocated_on"))
    finally:
        _migrate_to_latest()

    assert rows == [(payment.pk, fee.pk, Decimal("40.00"), first)]


@pytest.mark.django_db(transaction=True)
def test_going_back_before_the_application_day_makes_money_set_against_an_invoice_on_two_days_one_row(
    customer, make_invoice, manager
):
    # 100 of a payment set against the invoice on one day and 200 more later, and a
    # credit note's 50 and 30 likewise: that version kept one row per payment (or
    # note) and invoice, counted from the earliest day.
    invoice = make_invoice(customer, issued=DUE - dt.timedelta(days=30), due=DUE, amount="500.00")
    other = make_invoice(customer, issued=DUE - dt.timedelta(days=20), due=DUE, amount="70.00")
    payment = workspace.payment_record(customer=customer, amount=Decimal("300.00"), currency="EUR",
                                       received_on=DUE, allocations=[])
    note = workspace.credit_note_on_account(customer=customer, actor=manager, currency="EUR",
                                            amount=Decimal("80.00"), reason="Rebate",
                                            issued_on=DUE + dt.timedelta(days=1))
    for credit, amount, days in [(payment, "100.00", 2), (note, "50.00", 3), (payment, "200.00", 10),
                                 (note, "30.00", 10)]:
        workspace.credit_apply(customer=customer, actor=manager, credit=credit, invoices=[invoice],
                               amount=Decimal(amount), on=DUE + dt.timedelta(days=days))
    paid_once = workspace.payment_record(customer=customer, amount=Decimal("70.00"), currency="EUR",
                                         received_on=DUE, allocations=[(other, Decimal("70.00"))])
    assert Allocation.objects.count() == 5
    try:
        _migrate(BEFORE_APPLIED_ON)
        rows = sorted(_model_at(BEFORE_APPLIED_ON, "Allocation").objects.values_list(
            "payment_id", "credit_note_id", "invoice_id", "amount", "allocated_on"), key=str)
    finally:
        _migrate_to_latest()

    assert rows == sorted([
        (payment.pk, None, invoice.pk, Decimal("300.00"), DUE),
        (None, note.pk, invoice.pk, Decimal("80.00"), DUE + dt.timedelta(days=1)),
        (paid_once.pk, None, other.pk, Decimal("70.00"), DUE),
    ], key=str)
    assert Invoice.objects.get(pk=invoice.pk).open_amount == Decimal("120.00")
