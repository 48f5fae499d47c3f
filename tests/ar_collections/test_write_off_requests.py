"""A write-off a collector proposes (ticking off a finished ladder's item, or
from the account page's request form) and a manager approves: each invoice it
names is written off as bad debt, so nothing of it is left open and neither
dunning nor the worklist chase it again. An invoice paid, credited, disputed,
promised or planned while the request waited is shown with what changed, and
written off only as the manager confirms it; a manager who may not write off
invoices cannot approve one; a rejection writes off nothing."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.urls import reverse

from ar_collections import worklist, workspace
from ar_collections.dunning import eligible_invoices
from ar_collections.models import (
    DisputeReason,
    ExceptionKind,
    ExceptionRequest,
    ExceptionStatus,
    Invoice,
    InvoiceStatus,
    WorkItem,
    WorkKind,
    WorkStatus,
    WriteOff,
)
from arcrm.dates import format_day
from customers.models import EventKind, Segment, TimelineEvent

from .conftest import frozen
from .test_ladder_finished import ON, ladder_taken

pytestmark = pytest.mark.usefixtures("default_ladders", "on_day")

HTMX = {"HX-Request": "true"}
NOTE = "Their owner says the business is closing."


@pytest.fixture
def on_day():
    with frozen(ON):
        yield


@pytest.fixture
def account(make_account):
    """Owes EUR 500.00 and EUR 700.00, both overdue; its ladder has no step left."""
    return make_account(Segment.DISTRESSED, name="Ashford Civil Engineering")


@pytest.fixture
def five_hundred(account) -> Invoice:
    return account.invoices.get(total_amount=Decimal("500.00"))


@pytest.fixture
def seven_hundred(account) -> Invoice:
    return account.invoices.get(total_amount=Decimal("700.00"))


@pytest.fixture
def proposed(client, account, collector) -> ExceptionRequest:
    """The collector ticks off the finished ladder's item with "Proposed a write-off"."""
    ladder_taken(account)
    worklist.worklist_refresh(on=ON)
    item = WorkItem.objects.get(customer=account, kind=WorkKind.LADDER_ENDED)
    client.force_login(collector)
    response = client.post(reverse("collections:work_item_change", args=[item.pk, "done"]),
                           {"decision": "write_off", "note": NOTE})
    assert response.status_code == 302
    client.logout()
    return ExceptionRequest.objects.get(customer=account)


def decide_url(asked) -> str:
    return reverse("collections:exception_decide", args=[asked.pk])


def decide(client, asked, decision="approve", *, write_off=(), headers=None):
    return client.post(decide_url(asked), {"decision": decision, "note": "Agreed: nothing will come of it.",
                                           "write_off": list(write_off)}, headers=headers or {})


def ticked(invoice: Invoice) -> str:
    """A write-off's choice as the decision form offers it: the invoice and what it owes."""
    invoice.refresh_from_db()
    return f"{invoice.pk}:{invoice.open_amount}"


def text_of(response) -> str:
    return " ".join(response.content.decode().split())


def state(account) -> tuple:
    """What a refused decision must leave as it was."""
    return (list(account.invoices.order_by("pk").values_list("status", "open_amount")),
            WriteOff.objects.count(), TimelineEvent.objects.count(),
            list(ExceptionRequest.objects.order_by("pk").values_list("status", "decided_by")))


def test_the_finished_ladder_s_write_off_names_the_overdue_invoices_with_what_each_owes(
    proposed, collector, five_hundred, seven_hundred
):
    assert (proposed.kind, proposed.status, proposed.requested_by) == (
        ExceptionKind.WRITE_OFF, ExceptionStatus.PENDING, collector)
    assert list(proposed.write_off_lines.values_list("invoice", "asked_amount", "currency")) == [
        (five_hundred.pk, Decimal("500.00"), "EUR"), (seven_hundred.pk, Decimal("700.00"), "EUR")]
    assert NOTE in proposed.reason


def test_the_approvals_list_the_write_off_with_its_invoices_and_what_each_owes(
    client, manager, proposed, five_hundred, seven_hundred
):
    client.force_login(manager)

    page = text_of(client.get(reverse("collections:approvals")))

    assert f"{five_hundred.number}: owes EUR 500.00 now" in page
    assert f"{seven_hundred.number}: owes EUR 700.00 now" in page
    assert NOTE in page


def test_approving_writes_off_every_invoice_and_nothing_is_left_to_chase(
    client, manager, collector, account, proposed, five_hundred, seven_hundred
):
    # Held from dunning while a manager weighs them (test_write_off_holds_dunning).
    assert not eligible_invoices(on=ON).filter(customer=account).exists()
    client.force_login(manager)
    form = client.get(decide_url(proposed))
    # Both come ticked: neither changed since the collector asked.
    assert form.content.decode().count("checked") == 2

    response = decide(client, proposed, write_off=[ticked(five_hundred), ticked(seven_hundred)])

    assert response.status_code == 302
    proposed.refresh_from_db()
    assert (proposed.status, proposed.decided_by) == (ExceptionStatus.APPROVED, manager)
    assert not account.invoices.filter(status=InvoiceStatus.OPEN).exists()
    assert list(WriteOff.objects.order_by("invoice__total_amount").values_list(
        "invoice", "amount", "written_off_on", "decided_by", "reason")) == [
        (five_hundred.pk, Decimal("500.00"), ON, manager.pk, proposed.reason[:300]),
        (seven_hundred.pk, Decimal("700.00"), ON, manager.pk, proposed.reason[:300]),
    ]
    # Dunning no longer finds them, though nothing holds them any more, nor does the worklist bring
    # the account back.
    assert not proposed.pauses.filter(lifted_at__isnull=True).exists()
    assert not eligible_invoices(on=ON + dt.timedelta(days=1)).filter(customer=account).exists()
    worklist.worklist_refresh(on=ON + dt.timedelta(days=worklist.LADDER_WATCH_DAYS + 1))
    assert not WorkItem.objects.filter(customer=account, kind=WorkKind.LADDER_ENDED,
                                       status=WorkStatus.OPEN).exists()
    # The decision, then each write-off, on the timeline; the collector is told.
    decided = account.events.filter(kind=EventKind.EXCEPTION).latest("pk")
    assert decided.summary.startswith("Exception (write off as bad debt) approved by")
    assert "writing off EUR 1,200.00" in decided.summary
    assert account.events.filter(kind=EventKind.WRITE_OFF).count() == 2
    assert WorkItem.objects.filter(kind=WorkKind.DECIDED, assignee=collector, customer=account).exists()


def test_an_invoice_paid_meanwhile_is_shown_and_approval_as_asked_is_refused_changing_nothing(
    client, manager, account, proposed, five_hundred, seven_hundred
):
    workspace.payment_record(customer=account, amount=Decimal("500.00"), currency="EUR", received_on=ON,
                             allocations=[(five_hundred, Decimal("500.00"))])
    workspace.payment_record(customer=account, amount=Decimal("200.00"), currency="EUR", received_on=ON,
                             allocations=[(seven_hundred, Decimal("200.00"))])
    client.force_login(manager)

    page = text_of(client.get(reverse("collections:approvals")))
    assert f"{seven_hundred.number}: owes EUR 500.00 now (EUR 700.00 when asked)" in page
    assert f"{five_hundred.number} was paid or credited in full meanwhile" in page
    # The one paid in part is offered, not ticked: the manager confirms its new amount.
    form = client.get(decide_url(proposed)).content.decode()
    assert f'value="{ticked(seven_hundred)}"' in form
    assert "checked" not in form
    assert f'value="{five_hundred.pk}:' not in form
    before = state(account)

    with pytest.raises(ValidationError) as refused:
        workspace.exception_decide(request=proposed, manager=manager, approve=True, note="Gone", on=ON)

    said = " ".join(refused.value.messages)
    assert f"{five_hundred.number} was paid or credited in full meanwhile" in said
    assert f"{seven_hundred.number} was paid or credited in part meanwhile: it owes EUR 500.00 now" in said
    assert state(account) == before


def test_only_what_the_manager_confirms_is_written_off_once_an_invoice_was_paid_in_part(
    client, manager, account, proposed, five_hundred, seven_hundred
):
    client.force_login(manager)
    seen = ticked(seven_hundred)  # the form opened: EUR 700.00
    workspace.payment_record(customer=account, amount=Decimal("200.00"), currency="EUR", received_on=ON,
                             allocations=[(seven_hundred, Decimal("200.00"))])
    before = state(account)

    stale = decide(client, proposed, write_off=[seen, ticked(five_hundred)])

    assert stale.status_code == 422
    assert "paid, credited or taken up by a dispute, promise or plan since the page opened" in text_of(stale)
    assert state(account) == before

    response = decide(client, proposed, write_off=[ticked(seven_hundred)])

    assert response.status_code == 302
    assert list(WriteOff.objects.values_list("invoice", "amount")) == [(seven_hundred.pk, Decimal("500.00"))]
    five_hundred.refresh_from_db()
    assert (five_hundred.status, five_hundred.open_amount) == (InvoiceStatus.OPEN, Decimal("500.00"))
    proposed.refresh_from_db()
    assert proposed.status == ExceptionStatus.APPROVED
    decided = account.events.filter(kind=EventKind.EXCEPTION).latest("pk")
    assert f"not written off: {five_hundred.number}" in decided.summary


def test_an_invoice_disputed_meanwhile_is_refused_with_why_and_nothing_is_written_off(
    manager, account, proposed, five_hundred, seven_hundred
):
    workspace.dispute_open(customer=account, actor=manager, invoice=five_hundred, on=ON,
                           reason=DisputeReason.QUALITY, description="Cracked beams")
    before = state(account)

    with pytest.raises(ValidationError) as refused:
        workspace.exception_decide(request=proposed, manager=manager, approve=True, note="Gone", on=ON,
                                   write_off={five_hundred.pk: Decimal("500.00"),
                                              seven_hundred.pk: Decimal("700.00")})

    assert f"{five_hundred.number} has an open dispute" in " ".join(refused.value.messages)
    assert state(account) == before


def test_rejecting_writes_off_nothing_and_tells_the_collector(
    client, manager, collector, account, proposed
):
    client.force_login(manager)

    # A tick left on the form from before a payment does not stand in a rejection's way.
    response = decide(client, proposed, "reject", write_off=["999:1.00"], headers=HTMX)

    assert response.status_code in (200, 302)
    proposed.refresh_from_db()
    assert (proposed.status, proposed.decided_by) == (ExceptionStatus.REJECTED, manager)
    assert not WriteOff.objects.exists()
    assert account.invoices.filter(status=InvoiceStatus.OPEN).count() == 2
    told = WorkItem.objects.get(kind=WorkKind.DECIDED, assignee=collector, customer=account)
    assert "Exception (write off as bad debt) rejected by" in told.title


def test_a_manager_who_may_not_write_off_cannot_approve_a_write_off(client, manager, account, proposed,
                                                                     five_hundred, seven_hundred):
    deputy = User.objects.create_user(username="dora")
    deputy.user_permissions.add(*Permission.objects.filter(
        content_type__app_label__in=["collections", "customers"],
        codename__in=["change_exceptionrequest", "act_on_any_customer", "view_customer"]))
    client.force_login(deputy)
    before = state(account)

    response = decide(client, proposed, write_off=[ticked(five_hundred), ticked(seven_hundred)])

    assert response.status_code == 422
    assert "Only a manager who may write off invoices approves a write-off" in text_of(response)
    assert state(account) == before


def test_a_collector_asks_for_a_write_off_of_chosen_invoices_from_the_account_page(
    client, collector, account, five_hundred, seven_hundred
):
    client.force_login(collector)
    url = reverse("collections:exception_request", args=[account.pk])

    response = client.post(url, {"kind": "write_off", "invoices": [seven_hundred.pk],
                                 "reason": "Delivered to a site that closed"})

    assert response.status_code == 302
    asked = ExceptionRequest.objects.get(customer=account)
    assert asked.kind == ExceptionKind.WRITE_OFF
    assert list(asked.write_off_lines.values_list("invoice", "asked_amount")) == [
        (seven_hundred.pk, Decimal("700.00"))]

    again = client.post(url, {"kind": "write_off", "invoices": [seven_hundred.pk, five_hundred.pk],
                              "reason": "Both, then"})

    assert again.status_code == 422
    assert f"{seven_hundred.number} is in a write-off already waiting for a manager" in text_of(again)
    assert ExceptionRequest.objects.count() == 1


def test_a_write_off_names_no_invoice_something_still_pursues(client, collector, account, five_hundred):
    workspace.dispute_open(customer=account, actor=collector, invoice=five_hundred, on=ON,
                           reason=DisputeReason.QUALITY, description="Cracked beams")
    client.force_login(collector)

    response = client.post(reverse("collections:exception_request", args=[account.pk]),
                           {"kind": "write_off", "invoices": [five_hundred.pk], "reason": "Hopeless"})

    assert response.status_code == 422
    assert f"{five_hundred.number} has an open dispute" in text_of(response)
    assert not ExceptionRequest.objects.exists()


def test_a_write_off_request_closes_by_itself_once_every_invoice_it_names_is_settled_another_way(
    client, manager, collector, account, proposed, five_hundred, seven_hundred
):
    workspace.invoice_write_off(customer=account, actor=manager, invoice=five_hundred, on=ON,
                                reason="Written off from the invoice page")
    proposed.refresh_from_db()
    assert proposed.status == ExceptionStatus.PENDING  # the other still waits for a manager

    workspace.payment_record(customer=account, amount=Decimal("700.00"), currency="EUR", received_on=ON,
                             allocations=[(seven_hundred, Decimal("700.00"))])

    proposed.refresh_from_db()
    assert (proposed.status, proposed.decided_by) == (ExceptionStatus.LAPSED, None)
    assert proposed.decided_at is not None
    assert f"{five_hundred.number} was written off meanwhile" in proposed.decision_note
    assert f"{seven_hundred.number} was paid or credited in full meanwhile" in proposed.decision_note
    closed = account.events.filter(kind=EventKind.EXCEPTION).latest("pk")
    assert closed.summary.startswith("Exception (write off as bad debt) closed undecided: every invoice it "
                                     "named was settled meanwhile")
    assert (closed.details["before"], closed.details["after"]) == (
        {"status": ExceptionStatus.PENDING}, {"status": ExceptionStatus.LAPSED})
    told = WorkItem.objects.get(kind=WorkKind.DECIDED, assignee=collector, customer=account)
    assert "closed undecided" in told.title
    assert told.title.endswith("so nothing is left to write off — no need to ask again")
    # The manager sees it closed, with why, and has nothing left to decide.
    client.force_login(manager)
    page = text_of(client.get(reverse("collections:approvals")))
    assert f"closed undecided: Nothing left to write off: {five_hundred.number} was written off" in page
    assert decide_url(proposed) not in page
    before = state(account)
    response = decide(client, proposed, "reject")
    assert response.status_code == 422
    assert "This request closed undecided: Nothing left to write off" in text_of(response)
    assert state(account) == before


def test_the_account_page_says_a_write_off_closed_undecided_and_offers_no_asking_again(
    client, manager, collector, account, proposed, five_hundred, seven_hundred
):
    workspace.invoice_write_off(customer=account, actor=manager, invoice=five_hundred, on=ON,
                                reason="Written off from the invoice page")
    workspace.payment_record(customer=account, amount=Decimal("700.00"), currency="EUR", received_on=ON,
                             allocations=[(seven_hundred, Decimal("700.00"))])
    client.force_login(collector)

    html = client.get(reverse("customers:detail", args=[account.pk])).content.decode()
    page = " ".join(re.sub(r"<[^>]+>", " ", html).split())

    assert (f"Exception asked: Write off as bad debt (asked on {format_day(ON)}, closed undecided on "
            f"{format_day(ON)}: every invoice it named was settled another way)") in page
    assert "Ask again" not in page


def test_the_manager_still_writes_off_the_rest_once_some_invoices_were_settled_another_way(
    client, manager, account, proposed, five_hundred, seven_hundred
):
    workspace.invoice_write_off(customer=account, actor=manager, invoice=five_hundred, on=ON,
                                reason="Written off from the invoice page")
    client.force_login(manager)
    form = client.get(decide_url(proposed)).content.decode()
    assert f'value="{five_hundred.pk}:' not in form

    response = decide(client, proposed, write_off=[ticked(seven_hundred)])

    assert response.status_code == 302
    proposed.refresh_from_db()
    assert (proposed.status, proposed.decided_by) == (ExceptionStatus.APPROVED, manager)
    seven_hundred.refresh_from_db()
    assert seven_hundred.status == InvoiceStatus.WRITTEN_OFF
    assert WriteOff.objects.get(invoice=seven_hundred).amount == Decimal("700.00")
    decided = account.events.filter(kind=EventKind.EXCEPTION).latest("pk")
    assert f"not written off: {five_hundred.number} was written off meanwhile" in decided.summary
