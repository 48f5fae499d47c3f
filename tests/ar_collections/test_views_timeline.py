"""The account's timeline: newest first, "load more" pages that neither skip
nor repeat an event, filters by kind and by invoice, the dunning step behind
an event, and a query count that does not grow with the history."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from ar_collections import outbox
from ar_collections.delivery import actions_deliver
from ar_collections.dunning import ladders, run_plan, run_start
from ar_collections.imports import invoices_import
from ar_collections.models import (
    DunningAction,
    DunningCycle,
    Invoice,
    InvoiceStatus,
    MissCause,
    OutgoingMail,
    PaperDocument,
    PaymentBehaviour,
    TimelineEventInvoice,
)
from ar_collections.paper import documents_mark_posted
from ar_collections.services import cause_record
from ar_collections.statements import statement_send
from ar_collections.timeline import FILTER_KINDS, PAGE_SIZE, cursor_for, event_record
from ar_collections.workspace import invoice_copy_send, payment_record
from customers.models import EventKind, InvoiceDelivery, ReminderChannel, Segment, TimelineEvent

from .conftest import DUE, frozen

HTMX = {"HX-Request": "true"}
# Microseconds on purpose: the cursor must carry them, or events of the same second get lost.
START = dt.datetime(2025, 7, 1, 9, 0, 0, 123456, tzinfo=dt.UTC)
EVENT_ID = re.compile(r'id="event-(\d+)"')
LOAD_MORE = re.compile(r'id="timeline-more">.*?href="([^"]+)".*?hx-get="([^"]+)"', re.DOTALL)


def page_url(customer) -> str:
    return reverse("customers:detail", args=[customer.pk])


def timeline_url(customer) -> str:
    return reverse("customers:timeline", args=[customer.pk])


def shown(response) -> list[int]:
    return [int(pk) for pk in EVENT_ID.findall(response.content.decode())]


def load_more(response) -> tuple[str, str] | None:
    """The "load more" link's (href, hx-get), or None on the last page."""
    match = LOAD_MORE.search(response.content.decode())
    return (html_lib.unescape(match.group(1)), html_lib.unescape(match.group(2))) if match else None


def newest_first(events) -> list[int]:
    return [e.pk for e in sorted(events, key=lambda e: (e.occurred_at, e.pk), reverse=True)]


def events_of(
    customer, count: int, *, kinds=(EventKind.NOTE,), tied=range(0), actor=None
) -> list[TimelineEvent]:
    """`count` events a minute apart, oldest first; those at the positions in
    `tied` all happen at the same instant. With `actor`, every other one is theirs."""
    stamps = [START + dt.timedelta(minutes=n) for n in range(count)]
    for n in tied:
        stamps[n] = START + dt.timedelta(minutes=tied.start)
    return TimelineEvent.objects.bulk_create(
        [TimelineEvent(customer=customer, kind=kinds[n % len(kinds)], summary=f"Event {n}", occurred_at=at,
                       actor=actor if n % 2 else None)
         for n, at in enumerate(stamps)],
        batch_size=2000,
    )


def walk(client, customer, query: dict) -> list[list[int]]:
    """Read the whole timeline as htmx does: the first page, then every "load more"."""
    response = client.get(timeline_url(customer), query, headers=HTMX)
    assert response.content.decode().lstrip().startswith('<div id="timeline"')
    pages = [shown(response)]
    while link := load_more(response):
        response = client.get(link[1], headers=HTMX)
        assert response.status_code == 200
        assert '<div id="timeline"' not in response.content.decode()
        pages.append(shown(response))
        assert len(pages) < 100, "the pages never end"
    return pages


# --- Order and pages ---------------------------------------------------------------------


def test_the_account_page_shows_the_newest_event_first(client, collector, customer):
    middle = event_record(customer=customer, kind=EventKind.NOTE, summary="Middle", occurred_at=START)
    oldest = event_record(customer=customer, kind=EventKind.CALL, summary="Oldest",
                          occurred_at=START - dt.timedelta(days=1))
    newest = event_record(customer=customer, kind=EventKind.NOTE, summary="Newest",
                          occurred_at=START + dt.timedelta(hours=1))
    client.force_login(collector)

    response = client.get(page_url(customer))

    assert shown(response) == [newest.pk, middle.pk, oldest.pk]
    assert load_more(response) is None


def test_money_in_yen_reads_in_whole_yen_on_the_timeline(client, collector, manager, make_customer):
    account = make_customer(name="Tokyo Parts", account_number="C-TOKYO", currency="JPY")
    report = invoices_import("number,account_number,issue_date,due_date,currency,total_amount,"
                             "confirm_old_date\n"
                             "INV-JP,C-TOKYO,2025-06-01,2025-07-01,JPY,6000,2025-06-01\n", actor=manager)
    assert report.ok, report.errors
    payment_record(customer=account, amount=Decimal("2500"), currency="JPY", received_on=dt.date(2025, 7, 10),
                   allocations=[(Invoice.objects.get(number="INV-JP"), Decimal("2500"))], reference="BANK-JP")
    client.force_login(collector)

    html = client.get(page_url(account)).content.decode()

    summaries = re.findall(r'<span class="event-summary">([^<]*)</span>', html)
    assert any(s.startswith("Invoice INV-JP issued: JPY 6,000, due") for s in summaries), summaries
    assert any(s.startswith("Payment of JPY 2,500 received") for s in summaries), summaries
    assert not [s for s in summaries if "JPY" in s and ".00" in s]


def test_an_event_names_who_did_it_and_one_nobody_did_names_nobody(client, collector, customer):
    collector.first_name, collector.last_name = "Carla", ""
    collector.save()
    event_record(customer=customer, kind=EventKind.NOTE, summary="By hand", occurred_at=START,
                 actor=collector)
    event_record(customer=customer, kind=EventKind.DUNNING, summary="By the nightly run",
                 occurred_at=START + dt.timedelta(minutes=1))
    client.force_login(collector)

    text = client.get(timeline_url(customer), headers=HTMX).content.decode()

    assert re.search(r"By hand\s*</[^>]+>\s*<span class=\"muted\"> — Carla</span>", text), text
    assert re.search(r"By the nightly run\s*</[^>]+>\s*</", text), text
    assert "None" not in text


def test_what_an_event_says_and_who_did_it_are_shown_as_text_never_as_markup(client, collector, customer):
    """The rows are written in Python (timeline.rows_html): every value escaped."""
    collector.first_name = "<b>Carla</b>"
    collector.save()
    event_record(customer=customer, kind=EventKind.NOTE, actor=collector, occurred_at=START,
                 summary='Customer wrote <script>alert("x")</script> & "quotes"')
    client.force_login(collector)

    for response in (client.get(page_url(customer)), client.get(timeline_url(customer), headers=HTMX)):
        text = response.content.decode()
        assert "<script>alert" not in text and "<b>Carla</b>" not in text
        assert ("Customer wrote &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quotes&quot;"
                in text)
        assert "&lt;b&gt;Carla&lt;/b&gt;" in text


def test_an_event_shows_when_it_happened_in_the_installations_time_zone(
    client, collector, customer, settings
):
    settings.TIME_ZONE = "Europe/Berlin"
    event_record(customer=customer, kind=EventKind.NOTE, summary="Late call", actor=collector,
                 occurred_at=dt.datetime(2025, 7, 31, 22, 30, tzinfo=dt.UTC))
    client.force_login(collector)

    for response in (client.get(page_url(customer)), client.get(timeline_url(customer), headers=HTMX)):
        # 22:30 UTC is half past midnight the next day in Berlin (summer time)
        text = response.content.decode()
        assert '<time datetime="2025-07-31T22:30:00+00:00">1 Aug 2025 00:30</time>' in text


def test_the_filter_offers_every_kind_once_with_those_chosen_ticked(client, collector, customer):
    client.force_login(collector)

    text = client.get(timeline_url(customer), {"kind": [EventKind.CALL, EventKind.DISPUTE]},
                      headers=HTMX).content.decode()

    boxes = re.findall(r'<label class="chip"><input type="checkbox" name="kind" id="timeline-kind-(\w+)" '
                       r'value="(\w+)"( checked)?> ([^<]+)</label>', text)
    assert [(value, label) for value, _, _, label in boxes] == [
        (str(value), label) for value, label in FILTER_KINDS]
    assert all(box_id == value for box_id, value, _, _ in boxes)
    assert sorted(value for _, value, checked, _ in boxes if checked) == ["call", "dispute"]


def test_every_kind_of_event_has_a_box_in_the_filter(client, collector, customer):
    client.force_login(collector)

    text = client.get(timeline_url(customer), headers=HTMX).content.decode()

    offered = set(re.findall(r'name="kind" id="timeline-kind-\w+" value="(\w+)"', text))
    assert {str(kind) for kind in EventKind} | {"invoice_copy", "statement", "cause"} == offered


def test_invoice_copies_have_their_own_label_and_box_apart_from_the_notes(
    client, collector, customer, make_invoice
):
    invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-2001")
    copy = event_record(customer=customer, kind=EventKind.NOTE, subject=invoice, invoices=[invoice],
                        summary="Copy of invoice INV-2001 e-mailed to Ruth <ruth@example.com>",
                        details={"to": "ruth@example.com"}, occurred_at=START)
    # Written by hand, it is a note whatever it says.
    note = event_record(customer=customer, kind=EventKind.NOTE, summary="Copy of invoice INV-2001 asked for",
                        details={"text": "Copy of invoice INV-2001 asked for"},
                        occurred_at=START + dt.timedelta(minutes=1))
    client.force_login(collector)

    everything = client.get(timeline_url(customer), headers=HTMX).content.decode()
    notes = client.get(timeline_url(customer), {"kind": EventKind.NOTE}, headers=HTMX)
    copies = client.get(timeline_url(customer), {"kind": "invoice_copy"}, headers=HTMX)

    assert re.search(rf'id="event-{copy.pk}">.*?<span class="badge kind-invoice_copy">Invoice copy</span>',
                     everything)
    assert re.search(rf'id="event-{note.pk}">.*?<span class="badge kind-note">Note</span>', everything)
    assert shown(notes) == [note.pk]
    assert shown(copies) == [copy.pk]


def test_statements_and_cause_notes_have_their_own_labels_and_boxes_apart_from_the_notes(
    client, collector, customer, make_contact, make_invoice
):
    """A statement e-mailed, one queued for the post and then posted, and the
    cause of a cycle were all badged "Note", among what collectors write."""
    make_invoice(customer, issued=dt.date(2025, 5, 1), due=dt.date(2025, 5, 31), number="INV-2001")
    billing = make_contact(customer, name="Ruth", email="ruth@example.com", is_primary_billing=True,
                           postal_address="Acme Tools\nMain Street 1\n10115 Berlin")
    DunningCycle.objects.create(customer=customer, number=1, opened_on=dt.date(2025, 6, 1))
    with frozen(dt.date(2025, 7, 1)):
        e_mailed = statement_send(customer=customer, actor=collector, on=dt.date(2025, 7, 1))
        billing.invoice_delivery = InvoiceDelivery.PAPER
        billing.save()
        queued = statement_send(customer=customer, actor=collector, on=dt.date(2025, 7, 1))
        documents_mark_posted(document_ids=[PaperDocument.objects.get().pk], actor=collector)
        cause_record(customer=customer, cause=MissCause.RED_TAPE, actor=collector, on=dt.date(2025, 7, 1))
    posted = TimelineEvent.objects.get(summary__contains=" posted on ")
    cause = TimelineEvent.objects.get(summary__startswith="Cause noted")
    # Written by hand, they are notes whatever they say.
    notes = [event_record(customer=customer, kind=EventKind.NOTE, summary=text, details={"text": text},
                          actor=collector)
             for text in ("Statement of account asked for", "Cause noted: they lost the invoice")]
    client.force_login(collector)

    everything = client.get(timeline_url(customer), headers=HTMX).content.decode()
    by_kind = {kind: shown(client.get(timeline_url(customer), {"kind": kind}, headers=HTMX))
               for kind in (EventKind.NOTE, "statement", "cause")}

    for event, kind, label in [(e_mailed, "statement", "Statement"), (queued, "statement", "Statement"),
                               (posted, "statement", "Statement"), (cause, "cause", "Cause"),
                               (notes[0], "note", "Note"), (notes[1], "note", "Note")]:
        assert re.search(rf'id="event-{event.pk}">[^\n]*?<span class="badge kind-{kind}">{label}</span>',
                         everything), (event.summary, kind)
    assert by_kind[EventKind.NOTE] == [notes[1].pk, notes[0].pk]
    assert sorted(by_kind["statement"]) == sorted([e_mailed.pk, queued.pk, posted.pk])
    assert by_kind["cause"] == [cause.pk]


def test_a_copy_and_a_statement_the_mail_server_puts_off_or_refuses_keep_their_labels_and_boxes(
    client, collector, customer, make_contact, make_invoice, smtp_server, django_capture_on_commit_callbacks
):
    """The outbox's word that a copy or a statement is not sent yet, or not
    sent at all, was badged "Note" and listed with the notes, while the copy
    or statement it is about had its own label."""
    invoice = make_invoice(customer, issued=dt.date(2025, 5, 1), due=dt.date(2025, 5, 31), number="INV-2001")
    contact = make_contact(customer, name="Ruth", email="ruth@example.com", is_primary_billing=True)
    with frozen(dt.date(2025, 7, 1)), django_capture_on_commit_callbacks(execute=False):
        invoice_copy_send(customer=customer, invoice=invoice, contact=contact, actor=collector,
                          on=dt.date(2025, 7, 1))
        statement_send(customer=customer, actor=collector, on=dt.date(2025, 7, 1))
    copy_mail, statement_mail = OutgoingMail.objects.order_by("pk")
    smtp_server.refuse_with("451 4.3.0 Try again later")
    outbox.mails_send(mail_ids=[copy_mail.pk, statement_mail.pk])
    smtp_server.refuse_with("550 5.7.1 Message rejected")
    OutgoingMail.objects.update(retry_not_before=None)
    outbox.mails_send(mail_ids=[copy_mail.pk, statement_mail.pk])
    about = {mail: list(TimelineEvent.objects.filter(subject_id=mail.pk, details__mail=mail.pk)
                        .exclude(subject_type=None).order_by("pk"))
             for mail in (copy_mail, statement_mail)}
    assert [len(events) for events in about.values()] == [2, 2]
    assert "not sent yet" in about[copy_mail][0].summary and "not sent to" in about[copy_mail][1].summary
    client.force_login(collector)

    everything = client.get(timeline_url(customer), headers=HTMX).content.decode()
    by_kind = {kind: shown(client.get(timeline_url(customer), {"kind": kind}, headers=HTMX))
               for kind in (EventKind.NOTE, "invoice_copy", "statement")}

    for mail, kind, label in [(copy_mail, "invoice_copy", "Invoice copy"),
                              (statement_mail, "statement", "Statement")]:
        for event in about[mail]:
            assert re.search(rf'id="event-{event.pk}">[^\n]*?<span class="badge kind-{kind}">{label}</span>',
                             everything), (event.summary, kind)
            assert event.pk in by_kind[kind]
    assert by_kind[EventKind.NOTE] == []
    assert len(by_kind["invoice_copy"]) == 3 and len(by_kind["statement"]) == 3


def test_load_more_walks_the_whole_timeline_without_overlap_or_gaps(client, collector, customer):
    # 40 of the 60 events share one instant, across both page boundaries:
    # only the tie-break on id keeps them apart.
    events = events_of(customer, 60, tied=range(5, 45))
    client.force_login(collector)

    pages = walk(client, customer, {})

    assert [len(p) for p in pages] == [PAGE_SIZE, PAGE_SIZE, 60 - 2 * PAGE_SIZE]
    assert [pk for p in pages for pk in p] == newest_first(events)


def test_load_more_keeps_the_filters(client, collector, customer):
    events = events_of(customer, 120, kinds=(EventKind.NOTE, EventKind.CALL), tied=range(30, 90))
    client.force_login(collector)

    pages = walk(client, customer, {"kind": EventKind.CALL})

    calls = [e for e in events if e.kind == EventKind.CALL]
    assert [len(p) for p in pages] == [25, 25, 10]
    assert [pk for p in pages for pk in p] == newest_first(calls)


def test_without_htmx_load_more_shows_the_next_page_on_the_account_page(client, collector, customer):
    events = events_of(customer, 30)
    client.force_login(collector)
    first = client.get(page_url(customer))
    href, _ = load_more(first)

    second = client.get(href)

    assert href.startswith(page_url(customer) + "?before=") and href.endswith("#timeline")
    assert second.status_code == 200 and "<html" in second.content.decode()
    assert shown(first) + shown(second) == newest_first(events)


# --- Filters -----------------------------------------------------------------------------


def test_the_timeline_filters_by_kind(client, collector, customer):
    note = event_record(customer=customer, kind=EventKind.NOTE, summary="A note")
    call = event_record(customer=customer, kind=EventKind.CALL, summary="A call")
    promise = event_record(customer=customer, kind=EventKind.PROMISE, summary="A promise")
    client.force_login(collector)

    calls = client.get(timeline_url(customer), {"kind": EventKind.CALL}, headers=HTMX)
    both = client.get(timeline_url(customer), {"kind": [EventKind.CALL, EventKind.PROMISE]}, headers=HTMX)
    nonsense = client.get(timeline_url(customer), {"kind": "gossip"}, headers=HTMX)

    assert shown(calls) == [call.pk]
    assert 'value="call" checked' in calls.content.decode()
    assert shown(both) == [promise.pk, call.pk]
    # An unknown kind is no filter at all.
    assert shown(nonsense) == [promise.pk, call.pk, note.pk]


def test_each_page_reads_only_its_own_account_and_filters_whatever_was_read_before(
    client, collector, customer, make_customer
):
    # Every page starts from one query built once a process: no page's
    # account or filter may stay on it for the next.
    other = make_customer(name="Other account", collector=collector)
    note = event_record(customer=customer, kind=EventKind.NOTE, summary="A note")
    call = event_record(customer=customer, kind=EventKind.CALL, summary="A call")
    elsewhere = event_record(customer=other, kind=EventKind.NOTE, summary="Another account's note")
    client.force_login(collector)

    calls = client.get(timeline_url(customer), {"kind": EventKind.CALL}, headers=HTMX)
    theirs = client.get(timeline_url(other), headers=HTMX)
    ours = client.get(timeline_url(customer), headers=HTMX)

    assert shown(calls) == [call.pk]
    assert shown(theirs) == [elsewhere.pk]
    assert shown(ours) == [call.pk, note.pk]


def test_the_timeline_filters_by_invoice_number(client, collector, customer, make_invoice):
    first = make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-2001")
    second = make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-2002")
    recorded = event_record(customer=customer, kind=EventKind.PROMISE, summary="Promise on both",
                            invoices=[first, second], occurred_at=START)
    about = event_record(customer=customer, kind=EventKind.NOTE, summary="About the first", subject=first,
                         occurred_at=START + dt.timedelta(minutes=1))
    imported = TimelineEvent.objects.create(customer=customer, kind=EventKind.NOTE, summary="Imported",
                                            occurred_at=START + dt.timedelta(minutes=2))
    TimelineEventInvoice.objects.create(event=imported, invoice=first)
    event_record(customer=customer, kind=EventKind.NOTE, summary="Only the second", invoices=[second])
    event_record(customer=customer, kind=EventKind.NOTE, summary="No invoice at all")
    client.force_login(collector)

    response = client.get(timeline_url(customer), {"invoice": " inv-2001 "}, headers=HTMX)

    assert shown(response) == [imported.pk, about.pk, recorded.pk]
    assert 'value="inv-2001"' in response.content.decode()
    assert "No invoice" not in response.content.decode()


def test_the_invoice_filter_takes_a_part_of_the_number_found_on_this_account_alone(
    client, collector, customer, make_customer, make_invoice
):
    invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-2026-002881")
    make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-2026-002882")
    make_invoice(make_customer(name="Elsewhere Ltd"), issued=dt.date(2025, 6, 1), number="INV-2025-012881")
    about = event_record(customer=customer, kind=EventKind.NOTE, summary="About it", invoices=[invoice])
    event_record(customer=customer, kind=EventKind.NOTE, summary="No invoice at all")
    client.force_login(collector)

    response = client.get(timeline_url(customer), {"invoice": "2881"}, headers=HTMX)

    assert shown(response) == [about.pk]
    html = response.content.decode()
    assert "No invoice" not in html
    assert "Showing invoice INV-2026-002881." in html


def test_a_part_of_several_numbers_on_this_account_asks_which_one(client, collector, customer, make_invoice):
    make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-2026-002881")
    make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-2025-012881")
    event_record(customer=customer, kind=EventKind.NOTE, summary="No invoice at all")
    client.force_login(collector)

    response = client.get(page_url(customer), {"invoice": "2881"})

    html = response.content.decode()
    assert shown(response) == []
    assert "Several invoices on this account hold 2881: choose one." in html
    for number in ("INV-2025-012881", "INV-2026-002881"):
        assert f'href="{page_url(customer)}?invoice={number}#timeline"' in html


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_choosing_one_of_several_numbers_keeps_the_kinds_ticked(
    client, collector, customer, make_invoice, headers
):
    """The links named only the invoice: choosing one dropped the kinds the
    collector had ticked, and the timeline showed every kind again."""
    chosen = make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-2026-002881")
    make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-2025-012881")
    call = event_record(customer=customer, kind=EventKind.CALL, summary="Called", invoices=[chosen])
    event_record(customer=customer, kind=EventKind.NOTE, summary="Noted", invoices=[chosen])
    client.force_login(collector)
    wanted = {"invoice": "2881", "kind": [EventKind.CALL, EventKind.PROMISE]}

    html = html_lib.unescape(client.get(page_url(customer), wanted, headers=headers).content.decode())

    query = "invoice=INV-2026-002881&kind=call&kind=promise"
    assert f'href="{page_url(customer)}?{query}#timeline"' in html
    assert f'hx-get="{timeline_url(customer)}?{query}"' in html
    followed = client.get(f"{timeline_url(customer)}?{query}", headers=HTMX)
    assert shown(followed) == [call.pk]
    assert 'value="call" checked' in followed.content.decode()


def test_a_whole_number_wins_over_longer_numbers_holding_it(client, collector, customer, make_invoice):
    invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-1")
    make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-10")
    about = event_record(customer=customer, kind=EventKind.NOTE, summary="About it", invoices=[invoice])
    client.force_login(collector)

    response = client.get(timeline_url(customer), {"invoice": "inv-1"}, headers=HTMX)

    assert shown(response) == [about.pk]
    assert "Showing invoice" not in response.content.decode()


def test_the_invoice_filter_and_the_kind_filter_combine(client, collector, customer, make_invoice):
    invoice = make_invoice(customer, issued=dt.date(2025, 6, 1), number="INV-2001")
    call = event_record(customer=customer, kind=EventKind.CALL, summary="Called", invoices=[invoice])
    event_record(customer=customer, kind=EventKind.NOTE, summary="Noted", invoices=[invoice])
    event_record(customer=customer, kind=EventKind.CALL, summary="Called about nothing")
    client.force_login(collector)

    response = client.get(timeline_url(customer), {"invoice": "INV-2001", "kind": "call"}, headers=HTMX)

    assert shown(response) == [call.pk]


@pytest.mark.parametrize("number", ["INV-NOPE", "INV-ELSEWHERE"])
def test_an_invoice_number_not_on_this_account_is_pointed_out(
    client, collector, customer, make_customer, make_invoice, number
):
    other = make_customer(name="Elsewhere Ltd")
    elsewhere = make_invoice(other, issued=dt.date(2025, 6, 1), number="INV-ELSEWHERE")
    event_record(customer=other, kind=EventKind.NOTE, summary="Their note", invoices=[elsewhere])
    client.force_login(collector)

    response = client.get(page_url(customer), {"invoice": number})

    html = response.content.decode()
    assert response.status_code == 200
    assert f"No invoice {number} on this account." in html
    assert "Their note" not in html
    assert shown(response) == []  # an empty result, not the unfiltered timeline


def test_a_filter_that_finds_nothing_says_so(client, collector, customer):
    event_record(customer=customer, kind=EventKind.NOTE, summary="A note")
    client.force_login(collector)

    response = client.get(timeline_url(customer), {"kind": EventKind.DISPUTE}, headers=HTMX)

    assert shown(response) == []
    assert "Nothing here for these filters." in response.content.decode()


# --- Bad cursors, plain requests, who may read --------------------------------------------


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "2025-07-01", "20250701090000123456", "20250701090000123456-x", "20259901090000000000-7"],
)
@pytest.mark.parametrize("where", ["timeline", "account page"])
def test_a_cursor_the_page_did_not_hand_out_is_a_bad_request(client, collector, customer, cursor, where):
    events_of(customer, 3)
    client.force_login(collector)

    if where == "timeline":
        response = client.get(timeline_url(customer), {"before": cursor}, headers=HTMX)
    else:
        response = client.get(page_url(customer), {"before": cursor})

    assert response.status_code == 400


@pytest.mark.parametrize("where", ["timeline", "account page"])
def test_a_nul_in_the_invoice_filter_is_a_bad_request(client, collector, customer, where):
    events_of(customer, 3)
    client.force_login(collector)

    if where == "timeline":
        response = client.get(timeline_url(customer), {"invoice": "INV\x00"}, headers=HTMX)
    else:
        response = client.get(page_url(customer), {"invoice": "INV\x00"})

    assert response.status_code == 400


def test_without_htmx_the_timeline_url_redirects_to_the_account_page_with_the_same_query(
    client, collector, customer
):
    client.force_login(collector)

    filtered = client.get(timeline_url(customer), {"kind": ["call", "note"], "invoice": "INV-1"})
    bare = client.get(timeline_url(customer))

    assert filtered.status_code == 302
    assert filtered.url == page_url(customer) + "?kind=call&kind=note&invoice=INV-1#timeline"
    assert bare.status_code == 302 and bare.url == page_url(customer)


def test_a_filter_puts_the_account_page_with_its_query_in_the_address_bar(client, collector, customer):
    events = events_of(customer, 30)
    client.force_login(collector)

    filtered = client.get(timeline_url(customer), {"kind": "note", "invoice": "INV-1"}, headers=HTMX)
    cleared = client.get(timeline_url(customer), headers=HTMX)
    more = client.get(timeline_url(customer), {"before": cursor_for(events[-1])}, headers=HTMX)

    assert filtered["HX-Push-Url"] == page_url(customer) + "?kind=note&invoice=INV-1"
    assert cleared["HX-Push-Url"] == page_url(customer)
    # "Load more" stays where it is: the next page is no place to bookmark.
    assert "HX-Push-Url" not in more


def test_the_timeline_varies_on_the_htmx_header(client, collector, customer):
    client.force_login(collector)

    response = client.get(timeline_url(customer), headers=HTMX)

    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize("reader", ["viewer", "other_collector", "manager"])
def test_every_role_may_read_the_timeline(client, customer, request, reader):
    note = event_record(customer=customer, kind=EventKind.NOTE, summary="Visible to all")
    client.force_login(request.getfixturevalue(reader))

    page = client.get(page_url(customer))
    partial = client.get(timeline_url(customer), headers=HTMX)

    assert page.status_code == partial.status_code == 200
    assert shown(page) == shown(partial) == [note.pk]


def test_a_viewer_sees_no_action_bar(client, viewer, customer):
    client.force_login(viewer)

    html = client.get(page_url(customer)).content.decode()

    assert 'id="timeline"' in html
    assert "Actions on this account" not in html
    assert reverse("collections:note_add", args=[customer.pk]) not in html


def test_the_timeline_of_an_unknown_account_or_for_someone_without_a_role_is_not_found(
    client, collector, customer, django_user_model
):
    # The fragment's access check starts from one query built once a process:
    # a page read by a collector first must not open it to anyone else.
    event_record(customer=customer, kind=EventKind.NOTE, summary="A note")
    nobody = django_user_model.objects.create_user("no-role")
    client.force_login(collector)
    assert client.get(timeline_url(customer), headers=HTMX).status_code == 200
    missing = reverse("customers:timeline", args=[customer.pk + 1000])

    assert client.get(missing, headers=HTMX).status_code == 404
    client.force_login(nobody)
    response = client.get(timeline_url(customer), headers=HTMX)
    assert response.status_code == 404
    assert "A note" not in response.content.decode()


def test_anonymous_visitors_are_sent_to_log_in_for_the_timeline(client, customer):
    response = client.get(timeline_url(customer), headers=HTMX)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# --- The dunning step behind an event -------------------------------------------------------


@pytest.fixture
def emailed(make_account, plan_and_deliver, smtp_server) -> DunningAction:
    """The first friendly e-mail of the prompt ladder, sent to Anna Clerk."""
    account = make_account(Segment.PROMPT)
    assert plan_and_deliver(DUE + dt.timedelta(days=3))["emailed"] == 1
    return DunningAction.objects.get(customer=account)


@pytest.mark.parametrize("reader", ["collector", "viewer"])
def test_a_dunning_event_opens_the_e_mail_as_it_was_sent(client, emailed, smtp_server, request, reader):
    client.force_login(request.getfixturevalue(reader))
    detail_url = reverse("collections:action_detail", args=[emailed.pk])

    timeline = client.get(page_url(emailed.customer)).content.decode()
    response = client.get(detail_url)

    assert f'href="{detail_url}"' in timeline
    html = response.content.decode()
    assert response.status_code == 200
    (sent,) = smtp_server.messages
    assert emailed.subject == sent["Subject"]
    assert html_lib.escape(emailed.subject) in html
    assert "anna@acme.test" in html and "Anna Clerk" in html
    assert '<iframe class="email-frame"' in html and 'sandbox srcdoc="' in html
    # The text part as it went out, line for line.
    assert html_lib.escape(sent.get_body(("plain",)).get_content().strip().splitlines()[0]) in html
    assert "EUR 500.00" in html and "EUR 700.00" in html


def test_a_french_e_mail_s_subject_is_marked_french_on_the_english_page(
    client, collector, make_account, plan_and_deliver, smtp_server
):
    account = make_account(Segment.PROMPT, language="fr")
    assert plan_and_deliver(DUE + dt.timedelta(days=3))["emailed"] == 1
    emailed = DunningAction.objects.get(customer=account)
    client.force_login(collector)

    html = client.get(reverse("collections:action_detail", args=[emailed.pk])).content.decode()

    # A screen reader reads the subject with French voice and rules, the rest of the page in English.
    assert '<html lang="en"' in html
    assert f'<h1 id="action-title" lang="fr">{html_lib.escape(emailed.subject)}</h1>' in html
    assert html.count("<h1") == 1
    assert '<pre class="email-text" lang="fr">' in html


def test_an_english_e_mail_s_subject_needs_no_language_of_its_own(client, collector, emailed):
    client.force_login(collector)

    html = client.get(reverse("collections:action_detail", args=[emailed.pk])).content.decode()

    assert f'<h1 id="action-title">{html_lib.escape(emailed.subject)}</h1>' in html
    assert '<pre class="email-text">' in html


def test_an_unknown_dunning_step_is_not_found(client, collector):
    client.force_login(collector)

    assert client.get(reverse("collections:action_detail", args=[999_999])).status_code == 404


def test_the_step_page_lists_the_invoices_and_amounts_as_the_e_mail_listed_them(
    client, collector, make_account, smtp_server
):
    """Between planning and delivery the first invoice was paid and the second
    paid in part: the e-mail leaves the first off and asks for what is left."""
    account = make_account(Segment.PROMPT)
    first, second = Invoice.objects.filter(customer=account).order_by("number")
    day = DUE + dt.timedelta(days=3)
    with frozen(day):
        run_plan(run=run_start(run_date=day))
        Invoice.objects.filter(pk=first.pk).update(status=InvoiceStatus.PAID, open_amount=0, settled_on=day)
        Invoice.objects.filter(pk=second.pk).update(open_amount=Decimal("300.00"))
        assert actions_deliver(action_ids=list(DunningAction.objects.values_list("pk", flat=True)))[
            "emailed"] == 1
    action = DunningAction.objects.get(customer=account)
    client.force_login(collector)

    html = client.get(reverse("collections:action_detail", args=[action.pk])).content.decode()

    invoices = re.search(r"<dt>Invoices</dt><dd>(.*?)</dd>", html).group(1)
    assert invoices == f"{second.number} (EUR 300.00)"


def test_a_letter_s_step_page_shows_the_letter_and_whether_it_was_printed_for_the_post(
    client, collector, make_account, plan_and_deliver
):
    account = make_account(Segment.PROMPT, reminder_channel=ReminderChannel.LETTER)
    assert plan_and_deliver(DUE + dt.timedelta(days=3))["letters"] == 1
    letter = DunningAction.objects.get(customer=account)
    client.force_login(collector)
    url = reverse("collections:action_detail", args=[letter.pk])

    waiting = client.get(url).content.decode()
    assert "The letter as written" in waiting and "The e-mail as sent" not in waiting
    assert "Not yet: waiting in the print queue" in waiting

    printed_at = dt.datetime(2026, 3, 6, 10, 30, tzinfo=dt.UTC)
    DunningAction.objects.filter(pk=letter.pk).update(printed_at=printed_at)
    assert "6 Mar 2026 10:30, for the post" in client.get(url).content.decode()

    DunningAction.objects.filter(pk=letter.pk).update(printed_at=None)
    Invoice.objects.filter(customer=account).update(status=InvoiceStatus.PAID, open_amount=0, settled_on=DUE)
    assert "Never: everything it listed was settled before it went to the post" in (
        client.get(url).content.decode()
    )


def test_a_step_sent_by_another_channel_than_its_own_is_titled_in_plain_words(
    client, collector, make_account, plan_and_deliver
):
    account = make_account(Segment.PROMPT, email="")  # the friendly e-mail goes as a letter
    assert plan_and_deliver(DUE + dt.timedelta(days=3))["letters"] == 1
    letter = DunningAction.objects.get(customer=account)
    client.force_login(collector)
    response = client.get(reverse("collections:action_detail", args=[letter.pk]))

    page = " ".join(response.content.decode().split())

    assert "</span> E-mail step, sent as a letter, planned 5 Mar 2026</p>" in page
    assert "<title>Acme Tools · E-mail step, sent as a letter" in page
    assert "E-mail by letter" not in page


def test_the_dunning_step_page_is_read_only(client, collector, emailed):
    client.force_login(collector)

    assert client.post(reverse("collections:action_detail", args=[emailed.pk])).status_code == 405


# --- Query counts -------------------------------------------------------------------------------


@pytest.fixture
def busy_account(customer, collector, make_contact, make_invoice):
    """An account with the parts the page shows: contacts, invoices, behaviour."""
    make_contact(customer, name="Anna Clerk", is_primary_billing=True)
    for day in (1, 15):
        make_invoice(customer, issued=dt.date(2025, 6, day))
    PaymentBehaviour.objects.create(customer=customer, computed_on=dt.date(2025, 8, 5))
    return customer


def history(customer, count: int, actor) -> list[TimelineEvent]:
    """`count` events of two kinds, every other one by a person, the newer half at one instant."""
    return events_of(customer, count, kinds=(EventKind.NOTE, EventKind.CALL), tied=range(count // 2, count),
                     actor=actor)


@pytest.mark.parametrize("count", [10, 10_000])
def test_the_account_page_costs_the_same_queries_for_10_or_10000_events(
    client, collector, busy_account, django_assert_num_queries, count
):
    history(busy_account, count, collector)
    client.force_login(collector)

    # session, user, permissions (2), customer, the timeline page with its actors,
    # referrals, the last order days (the ordering rhythm), contacts, absences,
    # open invoices, charges owed, credit notes and
    # payments left to apply (the newest, and the totals), write-offs, the ladders'
    # stamp (the ladders were read before: kept while it stands), the open cycle and the pauses in force (read
    # once for the Dunning card and the preview), the card's last steps, the
    # preview's last contact, the office's holidays for its pay-by date and
    # invoice copies since the last cycle (its open invoices are the page's),
    # the commitments (promises, plans, disputes, exception requests), role groups, the Payments card (none
    # to list, so no allocations to read), the account's open work items, and
    # whether a request waiting for a manager holds the preview's step
    ladders()
    with django_assert_num_queries(32):
        response = client.get(page_url(busy_account))

    assert len(shown(response)) == min(PAGE_SIZE, count)


@pytest.mark.parametrize("count", [10, 10_000])
def test_the_first_timeline_page_costs_the_same_queries_for_10_or_10000_events(
    client, collector, busy_account, django_assert_num_queries, count
):
    history(busy_account, count, collector)
    client.force_login(collector)

    # session, user, permissions (2), customer, the page with its actors
    with django_assert_num_queries(6):
        response = client.get(timeline_url(busy_account), headers=HTMX)

    assert len(shown(response)) == min(PAGE_SIZE, count)


@pytest.mark.parametrize("count", [10, 10_000])
def test_a_deep_load_more_costs_what_the_first_page_costs(
    client, collector, busy_account, django_assert_num_queries, count
):
    events = history(busy_account, count, collector)
    # Near the very end of the account's history: the four oldest events are left.
    cursor = cursor_for(sorted(events, key=lambda e: (e.occurred_at, e.pk))[4])
    client.force_login(collector)

    # The same six: the cursor bounds the index range, nothing is counted or skipped.
    with django_assert_num_queries(6):
        response = client.get(timeline_url(busy_account), {"before": cursor}, headers=HTMX)

    assert len(shown(response)) == 4

