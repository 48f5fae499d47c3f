"""Everything in the print queue that nobody posts goes on the account
collector's worklist after a few days, as a letter does: an invoice copy or a
statement for a contact who takes paper, named as what it is, until it is
posted or withdrawn."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse

from ar_collections import paper
from ar_collections.models import PaperDocument, PaperKind, WorkItem, WorkKind, WorkStatus
from ar_collections.worklist import LETTER_POST_WITHIN_DAYS, worklist_refresh

from .conftest import frozen
from .test_paper_copies import TODAY, copy_posted, lotte, statement_posted, vos  # noqa: F401

LATE = TODAY + dt.timedelta(days=LETTER_POST_WITHIN_DAYS)


def refresh(day: dt.date) -> None:
    with frozen(day):
        worklist_refresh(on=day)


def unposted_items():
    return WorkItem.objects.filter(kind=WorkKind.LETTER_UNPOSTED)


def test_an_invoice_copy_left_in_the_print_queue_goes_on_the_collector_s_worklist_once(
        client, collector, vos):  # noqa: F811
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))

    refresh(LATE - dt.timedelta(days=1))
    assert not unposted_items().exists()
    refresh(LATE)
    refresh(LATE + dt.timedelta(days=1))

    [item] = unposted_items()
    assert (item.status, item.assignee, item.customer, item.document) == (
        WorkStatus.OPEN, collector, vos, PaperDocument.objects.get())
    assert item.title == ("Copy of invoice INV-2026-000771 to Lotte Meijer, queued on 20 Apr, "
                          "not posted yet: post it or withdraw it")
    assert item.get_kind_display() == "Not posted"


def test_a_statement_left_in_the_print_queue_goes_on_the_worklist_and_links_to_the_queue(
        client, collector, vos):  # noqa: F811
    client.force_login(collector)
    statement_posted(client, vos)
    refresh(LATE)

    assert PaperDocument.objects.get().kind == PaperKind.STATEMENT
    assert unposted_items().get().title == ("Statement of account of 20 Apr 2026 to Lotte Meijer, queued on "
                                            "20 Apr, not posted yet: post it or withdraw it")
    with frozen(LATE):
        page = client.get(reverse("collections:worklist")).content.decode()
    assert "Statement of account of 20 Apr 2026 to Lotte Meijer, queued on 20 Apr, not posted yet" in page
    assert f'href="{reverse("collections:letters")}"' in page


def test_the_item_closes_when_the_copy_is_marked_posted(client, collector, vos):  # noqa: F811
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))
    refresh(LATE)

    with frozen(LATE):
        client.post(reverse("collections:letters_printed"), {"documents": [PaperDocument.objects.get().pk]})

    assert PaperDocument.objects.get().printed_at is not None
    item = unposted_items().get()
    assert (item.status, item.done_by) == (WorkStatus.DONE, collector)


def test_the_item_closes_when_the_copy_is_withdrawn(client, collector, vos):  # noqa: F811
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))
    refresh(LATE)

    paper.document_withdraw(document=PaperDocument.objects.get(), actor=collector, reason="Mailed after all")

    item = unposted_items().get()
    assert (item.status, item.done_by) == (WorkStatus.DONE, collector)


def test_the_daily_refresh_closes_the_item_of_a_document_that_left_the_queue_another_way(
        client, collector, vos):  # noqa: F811
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))
    refresh(LATE)

    PaperDocument.objects.update(printed_at=dt.datetime(2026, 4, 24, 8, tzinfo=dt.UTC), printed_by=collector)
    refresh(LATE + dt.timedelta(days=1))

    assert unposted_items().get().status == WorkStatus.DONE
