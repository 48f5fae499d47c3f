"""A dispute over part of an invoice ("only 40 of 50 pallets arrived"): the
disputed amount is held back, the rest is chased as usual."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from ar_collections import workspace
from ar_collections.dunning import eligible_invoices, next_step, run_plan, run_start
from ar_collections.forms import letters_in_queue
from ar_collections.models import (
    ActionStatus,
    Dispute,
    DisputeOutcome,
    DisputeReason,
    DunningAction,
    DunningPause,
    Invoice,
    PauseKind,
)
from customers.models import EventKind, ReminderChannel, TimelineEvent
from tests.ar_collections.conftest import DUE, frozen

pytestmark = pytest.mark.usefixtures("default_ladders")

HTMX = {"HX-Request": "true"}


def days(n: int) -> dt.date:
    return DUE + dt.timedelta(days=n)


@pytest.fixture
def account(make_account):
    return make_account()


@pytest.fixture
def invoices(account) -> list[Invoice]:
    return list(account.invoices.order_by("total_amount"))  # EUR 500, EUR 700


def dispute_url(customer) -> str:
    return reverse("collections:dispute_open", args=[customer.pk])


def dispute(account, invoice, collector, *, on: dt.date, amount: str | None = None) -> Dispute:
    return workspace.dispute_open(customer=account, actor=collector, invoice=invoice, on=on,
                                  reason=DisputeReason.QUANTITY, description="Only 40 of 50 pallets arrived",
                                  amount=None if amount is None else Decimal(amount))


def chased(account, *, on: dt.date) -> set[str]:
    return set(eligible_invoices(on=on).filter(customer=account).values_list("number", flat=True))


# --- The form ---------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_a_dispute_of_part_of_an_invoice_is_recorded_for_that_amount(
    client, collector, account, invoices, headers
):
    _, large = invoices
    client.force_login(collector)

    with frozen(days(20)):
        response = client.post(dispute_url(account), {
            "invoice": large.pk, "reason": DisputeReason.QUANTITY, "amount": "140.00",
            "description": "Only 40 of 50 pallets arrived", "department": "",
        }, headers=headers)

    assert response.status_code == (200 if headers else 302)
    recorded = Dispute.objects.get(invoice=large)
    assert recorded.disputed_amount == Decimal("140.00")
    messages = [m.message for m in response.wsgi_request._messages]
    assert messages == [f"Dispute of EUR 140.00 on {large.number} opened; the EUR 560.00 not disputed is "
                        "chased as before."]


def test_a_dispute_with_no_amount_covers_all_that_is_still_open(client, collector, account, invoices):
    _, large = invoices
    workspace.payment_record(customer=account, amount=Decimal("100.00"), currency="EUR", received_on=days(10),
                             allocations=[(large, Decimal("100.00"))])
    client.force_login(collector)

    with frozen(days(20)):
        response = client.post(dispute_url(account), {
            "invoice": large.pk, "reason": DisputeReason.QUALITY, "amount": "",
            "description": "All of it scratched", "department": "",
        })

    assert response.status_code == 302
    assert Dispute.objects.get(invoice=large).disputed_amount == Decimal("600.00")


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
@pytest.mark.parametrize(("currency", "total", "amount", "said"), [
    ("EUR", "700.00", "700.01", "{number} has EUR 700.00 open: a dispute cannot be for more."),
    ("EUR", "700.00", "0", "A disputed amount is more than zero: leave it blank to dispute all that is "
                           "open."),
    ("EUR", "700.00", "-5.00", "A disputed amount is more than zero: leave it blank to dispute all that is "
                               "open."),
    ("JPY", "6000", "100.50", "JPY has no places after the point: write 100 or 101, not 100.50."),
], ids=["above-the-open-amount", "zero", "negative", "half-a-yen"])
def test_a_disputed_amount_that_cannot_be_is_refused_and_changes_nothing(
    client, collector, account, make_invoice, headers, currency, total, amount, said
):
    invoice = make_invoice(account, issued=DUE - dt.timedelta(days=30), due=DUE, amount=total,
                           currency=currency)
    client.force_login(collector)

    response = client.post(dispute_url(account), {
        "invoice": invoice.pk, "reason": DisputeReason.QUANTITY, "amount": amount,
        "description": "Only 40 of 50 pallets arrived", "department": "",
    }, headers=headers)

    assert response.status_code == 422
    html = response.content.decode()
    assert said.format(number=invoice.number) in html
    assert ("<html" in html) is not bool(headers)
    assert not Dispute.objects.exists() and not DunningPause.objects.exists()


def test_the_account_page_shows_the_disputed_amount(client, collector, account, invoices):
    _, large = invoices
    dispute(account, large, collector, on=days(20), amount="140.00")
    client.force_login(collector)

    page = client.get(reverse("customers:detail", args=[account.pk])).content.decode()

    box = " ".join(page.split('<section id="commitments"')[1].split("</section>")[0].split())
    assert f"Dispute on {large.number} (EUR 140.00 of EUR 700.00 open): " in box


def pauses_line(client, account) -> str:
    page = client.get(reverse("customers:detail", args=[account.pk])).content.decode()
    return " ".join(page.split('data-figure="pauses">')[1].split("</dd>")[0].split())


def test_the_account_page_s_pauses_say_how_much_of_an_invoice_disputed_in_part_is_in_dispute(
    client, collector, account, invoices
):
    small, large = invoices
    dispute(account, large, collector, on=days(20), amount="140.00")
    dispute(account, small, collector, on=days(20))
    client.force_login(collector)

    with frozen(days(20)):
        line = pauses_line(client, account)

    assert f"EUR 140.00 of {large.number} in dispute until resolved" in line
    assert f"Open dispute on {small.number} until resolved" in line


def test_the_dunning_card_and_the_pause_itself_say_how_much_of_an_invoice_disputed_in_part_is_in_dispute(
    client, collector, account, invoices
):
    """One wording wherever a pause is named: the header's Pauses line, the
    Dunning card's "Pauses in force" and the pause itself (as the admin and
    its choices show it)."""
    small, large = invoices
    dispute(account, large, collector, on=days(20), amount="140.00")
    dispute(account, small, collector, on=days(20))
    client.force_login(collector)

    with frozen(days(20)):
        page = client.get(reverse("customers:detail", args=[account.pk])).content.decode()

    card = " ".join(page.split("Pauses in force")[1].split("</ul>")[0].split())
    assert f"EUR 140.00 of {large.number} in dispute</strong>, until resolved" in card
    assert f"Open dispute on {small.number}</strong>, until resolved" in card
    said = {p.invoice_id: str(p) for p in DunningPause.objects.filter(customer=account)}
    assert said == {large.pk: f"EUR 140.00 of {large.number} in dispute until resolved",
                    small.pk: f"Open dispute on {small.number} until resolved"}


def test_once_the_undisputed_rest_is_paid_the_pauses_say_the_whole_invoice_is_in_dispute(
    client, collector, account, invoices
):
    _, large = invoices
    dispute(account, large, collector, on=days(20), amount="140.00")
    workspace.payment_record(customer=account, amount=Decimal("560.00"), currency="EUR", received_on=days(21),
                             allocations=[(large, Decimal("560.00"))])
    client.force_login(collector)

    with frozen(days(22)):
        line = pauses_line(client, account)

    assert line.startswith(f"Open dispute on {large.number} until resolved")
    assert "EUR 140.00" not in line


# --- Dunning ----------------------------------------------------------------------------------


def test_the_undisputed_part_of_an_invoice_is_chased_and_the_email_says_what_is_not_asked_for(
    account, invoices, collector, plan_and_deliver, smtp_server
):
    small, large = invoices
    dispute(account, large, collector, on=days(1), amount="200.00")

    plan_and_deliver(days(3))

    [message] = smtp_server.messages
    action = DunningAction.objects.get(customer=account)
    assert dict(action.lines.values_list("invoice__number", "open_amount")) == {
        small.number: Decimal("500.00"), large.number: Decimal("500.00"),
    }
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for part in (text, html):
        assert "EUR 1,000.00" in part and "EUR 1,200.00" not in part
        assert "EUR 200.00 of it under dispute, not asked for" in part
    assert text.index("EUR 200.00 of it under dispute") > text.index(large.number)
    # Ten days from 5 Mar are Sunday 15 Mar: the Monday after.
    assert TimelineEvent.objects.get(customer=account, kind=EventKind.DUNNING).summary == (
        "Friendly reminder e-mailed to Anna Clerk: 2 invoices, EUR 1,000.00, pay by 16 Mar 2026"
    )


def test_the_preview_counts_the_undisputed_part_and_holds_back_nothing_else(account, invoices, collector):
    small, large = invoices
    dispute(account, large, collector, on=days(1), amount="200.00")

    preview = next_step(account, on=days(3))

    assert [i.number for i in preview.invoices] == [small.number, large.number]
    assert preview.held == []


def test_the_account_page_s_preview_lists_what_it_would_ask_for_and_what_is_disputed(
    client, collector, account, invoices
):
    small, large = invoices
    dispute(account, large, collector, on=days(1), amount="200.00")
    client.force_login(collector)

    with frozen(days(3)):
        page = client.get(reverse("customers:detail", args=[account.pk])).content.decode()

    listed = " ".join(page.split('data-list="listed">')[1].split("</ul>")[0].split())
    assert f"<li>{small.number} · EUR 500.00</li>" in listed
    assert f"<li>{large.number} · EUR 500.00 (EUR 200.00 of it under dispute, not asked for)</li>" in listed


def test_a_dispute_of_the_whole_invoice_still_leaves_it_out(
    account, invoices, collector, plan_and_deliver, smtp_server
):
    small, large = invoices
    dispute(account, large, collector, on=days(1))

    plan_and_deliver(days(3))

    action = DunningAction.objects.get(customer=account)
    assert list(action.lines.values_list("invoice__number", flat=True)) == [small.number]
    [message] = smtp_server.messages
    assert "under dispute" not in message.get_body(("plain",)).get_content()
    assert chased(account, on=days(3)) == {small.number}
    assert [(i.number, why) for i, why in next_step(account, on=days(3)).held] == [
        (large.number, "Open dispute until resolved")]


def test_accounts_planned_together_are_each_held_back_by_their_own_pauses_only(make_account, collector):
    in_part, in_whole, promised, clear = (make_account(name=n) for n in ("Part", "Whole", "Promise", "Clear"))
    for account, amount in ((in_part, "200.00"), (in_whole, None)):
        dispute(account, account.invoices.get(total_amount=Decimal("700.00")), collector, on=days(1),
                amount=amount)
    DunningPause.objects.create(customer=promised, kind=PauseKind.PROMISE, reason="Pays on the 20th",
                                owner=collector, starts_on=days(1), ends_on=days(20))

    with frozen(days(3)):
        run_plan(run=run_start(run_date=days(3)))

    asked = {
        account.name: sorted(DunningAction.objects.get(customer=account).lines.values_list("open_amount",
                                                                                           flat=True))
        for account in (in_part, in_whole, clear)
    }
    assert asked == {"Part": [Decimal("500.00"), Decimal("500.00")], "Whole": [Decimal("500.00")],
                     "Clear": [Decimal("500.00"), Decimal("700.00")]}
    assert not DunningAction.objects.filter(customer=promised).exists()


def test_once_the_undisputed_part_is_paid_the_invoice_is_no_longer_chased(account, invoices, collector):
    small, large = invoices
    dispute(account, large, collector, on=days(1), amount="200.00")
    assert chased(account, on=days(3)) == {small.number, large.number}

    workspace.payment_record(customer=account, amount=Decimal("500.00"), currency="EUR", received_on=days(2),
                             allocations=[(large, Decimal("500.00"))])

    assert chased(account, on=days(3)) == {small.number}


# --- Letters in the print queue ----------------------------------------------------------------


@pytest.fixture
def letter(make_account, plan_and_deliver):
    """A friendly letter of days(3) in the print queue, asking for EUR 500 and EUR 700."""
    account = make_account(reminder_channel=ReminderChannel.LETTER)
    plan_and_deliver(days(3))
    letter = DunningAction.objects.get(customer=account)
    assert letter in letters_in_queue()
    return letter


def test_a_dispute_of_everything_a_letter_asks_for_withdraws_it_from_the_print_queue(letter, collector):
    account = letter.customer
    small, large = account.invoices.order_by("total_amount")
    with frozen(days(4)):
        workspace.payment_record(customer=account, amount=Decimal("500.00"), currency="EUR",
                                 received_on=days(4), allocations=[(small, Decimal("500.00"))])
        dispute(account, large, collector, on=days(4))

    letter.refresh_from_db()
    assert letter.status == ActionStatus.SKIPPED and letter not in letters_in_queue()
    assert TimelineEvent.objects.get(customer=account, summary__startswith="Letter of").summary == (
        f"Letter of 5 Mar 2026 not posted: the dispute on {large.number} holds everything it asks for; "
        "withdrawn from the print queue"
    )


@pytest.mark.parametrize("disputed", ["large-in-part", "small-whole"])
def test_a_letter_also_asking_for_money_not_disputed_stays_in_the_print_queue(letter, collector, disputed):
    account = letter.customer
    small, large = account.invoices.order_by("total_amount")
    with frozen(days(4)):
        if disputed == "large-in-part":
            dispute(account, small, collector, on=days(4))
            dispute(account, large, collector, on=days(4), amount="200.00")
        else:
            dispute(account, small, collector, on=days(4))

    letter.refresh_from_db()
    assert letter.status == ActionStatus.DONE and letter in letters_in_queue()


# --- Resolution -------------------------------------------------------------------------------


def test_a_credit_note_takes_off_up_to_the_disputed_amount(account, invoices, collector):
    _, large = invoices
    opened = dispute(account, large, collector, on=days(20), amount="200.00")

    with pytest.raises(ValidationError) as refused:
        workspace.dispute_resolve(dispute=opened, actor=collector, outcome=DisputeOutcome.CREDIT_NOTE,
                                  amount=Decimal("200.01"), note="Ten pallets missing", on=days(21))
    assert refused.value.message_dict == {"amount": [
        "A credit note is between EUR 0.01 and the EUR 200.00 disputed."]}
    large.refresh_from_db(), opened.refresh_from_db()
    assert (large.open_amount, opened.status) == (Decimal("700.00"), "open")

    workspace.dispute_resolve(dispute=opened, actor=collector, outcome=DisputeOutcome.CREDIT_NOTE,
                              amount=Decimal("200.00"), note="Ten pallets missing", on=days(21))
    large.refresh_from_db()
    assert large.open_amount == Decimal("500.00")


def test_a_corrected_total_takes_off_up_to_the_disputed_amount(account, invoices, collector):
    _, large = invoices
    opened = dispute(account, large, collector, on=days(20), amount="200.00")

    with pytest.raises(ValidationError) as refused:
        workspace.dispute_resolve(dispute=opened, actor=collector, outcome=DisputeOutcome.CORRECTED_INVOICE,
                                  amount=Decimal("499.99"), note="Ten pallets missing", on=days(21))
    assert refused.value.message_dict == {"amount": [
        "The corrected total must be below EUR 700.00 and at least EUR 500.00: the dispute is about "
        "EUR 200.00 of it."]}

    workspace.dispute_resolve(dispute=opened, actor=collector, outcome=DisputeOutcome.CORRECTED_INVOICE,
                              amount=Decimal("500.00"), note="Ten pallets missing", on=days(21))
    large.refresh_from_db()
    assert (large.total_amount, large.open_amount) == (Decimal("500.00"), Decimal("500.00"))


def test_a_credit_on_an_invoice_part_paid_since_takes_off_no_more_than_is_open(account, invoices, collector):
    _, large = invoices
    opened = dispute(account, large, collector, on=days(20), amount="200.00")
    workspace.payment_record(customer=account, amount=Decimal("600.00"), currency="EUR", received_on=days(21),
                             allocations=[(large, Decimal("600.00"))])

    with pytest.raises(ValidationError, match=r"between EUR 0\.01 and the EUR 100\.00 still open"):
        workspace.dispute_resolve(dispute=opened, actor=collector, outcome=DisputeOutcome.CREDIT_NOTE,
                                  amount=Decimal("200.00"), note="Ten pallets missing", on=days(22))



# --- Disputes from before amounts were kept ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_disputes_opened_before_amounts_were_kept_cover_what_their_invoices_owe_or_what_was_taken_off(
    make_account, manager
):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    account = make_account()
    small, large = account.invoices.order_by("total_amount")  # EUR 500, EUR 700
    still_open = dispute(account, small, manager, on=days(20))
    credited = dispute(account, large, manager, on=days(20))
    workspace.dispute_resolve(dispute=credited, actor=manager, outcome=DisputeOutcome.CREDIT_NOTE,
                              amount=Decimal("120.00"), note="Agreed", on=days(20))
    rejected = dispute(account, large, manager, on=days(21))
    workspace.dispute_resolve(dispute=rejected, actor=manager, outcome=DisputeOutcome.REJECTED, note="No",
                              on=days(21))

    executor = MigrationExecutor(connection)
    try:
        executor.migrate([("collections", "0037_write_off")])
        Invoice.objects.filter(pk=small.pk).update(open_amount=Decimal("450.00"))  # part paid since
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    assert dict(Dispute.objects.values_list("pk", "disputed_amount")) == {
        still_open.pk: Decimal("450.00"), credited.pk: Decimal("120.00"), rejected.pk: Decimal("700.00"),
    }
