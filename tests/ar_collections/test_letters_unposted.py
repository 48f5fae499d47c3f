"""A letter nobody posts holds its account's next step: after a few days in
the print queue it is on the account collector's worklist, until it is posted
or withdrawn."""

import datetime as dt

from django.urls import reverse

from ar_collections.delivery import letter_withdraw
from ar_collections.models import DunningAction, WorkItem, WorkKind, WorkStatus
from ar_collections.worklist import LETTER_POST_WITHIN_DAYS, worklist_refresh
from customers.models import ReminderChannel, Segment

from .conftest import DUE, frozen

WRITTEN = DUE + dt.timedelta(days=3)  # the prompt payers' first step


def refresh(day: dt.date) -> None:
    with frozen(day):
        worklist_refresh(on=day)


def unposted_items():
    return WorkItem.objects.filter(kind=WorkKind.LETTER_UNPOSTED)


def letter_waiting(make_account, plan_and_deliver) -> DunningAction:
    account = make_account(Segment.PROMPT, reminder_channel=ReminderChannel.LETTER)
    plan_and_deliver(WRITTEN)
    return DunningAction.objects.get(customer=account, step__position=1)


def test_a_letter_left_in_the_print_queue_goes_on_the_collector_s_worklist_once(
    make_account, plan_and_deliver, collector
):
    letter = letter_waiting(make_account, plan_and_deliver)

    refresh(WRITTEN + dt.timedelta(days=LETTER_POST_WITHIN_DAYS - 1))
    assert not unposted_items().exists()

    for later in (0, 1):
        refresh(WRITTEN + dt.timedelta(days=LETTER_POST_WITHIN_DAYS + later))
    [item] = unposted_items()
    assert (item.status, item.assignee, item.customer, item.action) == (
        WorkStatus.OPEN, collector, letter.customer, letter)
    assert item.title == ("Letter of 5 Mar not posted yet: post it or withdraw it "
                          "(the account's next step waits for it)")


def test_the_item_closes_when_the_letter_is_marked_printed(
    make_account, plan_and_deliver, client, collector
):
    letter = letter_waiting(make_account, plan_and_deliver)
    refresh(WRITTEN + dt.timedelta(days=LETTER_POST_WITHIN_DAYS))

    client.force_login(collector)
    client.post(reverse("collections:letters_printed"), {"letters": [letter.pk]})

    letter.refresh_from_db()
    assert letter.printed_at is not None
    assert unposted_items().get().status == WorkStatus.DONE


def test_the_item_closes_when_the_letter_is_withdrawn(make_account, plan_and_deliver, collector):
    letter = letter_waiting(make_account, plan_and_deliver)
    refresh(WRITTEN + dt.timedelta(days=LETTER_POST_WITHIN_DAYS))

    letter_withdraw(letter=letter, actor=collector, reason="Paid by phone meanwhile")

    item = unposted_items().get()
    assert (item.status, item.done_by) == (WorkStatus.DONE, collector)


def test_the_daily_refresh_closes_the_item_of_a_letter_that_left_the_queue_another_way(
    make_account, plan_and_deliver
):
    letter = letter_waiting(make_account, plan_and_deliver)
    refresh(WRITTEN + dt.timedelta(days=LETTER_POST_WITHIN_DAYS))

    DunningAction.objects.filter(pk=letter.pk).update(printed_at=dt.datetime(2026, 3, 12, 8, tzinfo=dt.UTC))
    refresh(WRITTEN + dt.timedelta(days=LETTER_POST_WITHIN_DAYS + 1))

    assert unposted_items().get().status == WorkStatus.DONE


def test_the_worklist_links_the_item_to_the_print_queue(make_account, plan_and_deliver, client, collector):
    letter_waiting(make_account, plan_and_deliver)
    day = WRITTEN + dt.timedelta(days=LETTER_POST_WITHIN_DAYS)
    refresh(day)

    client.force_login(collector)
    with frozen(day):
        page = client.get(reverse("collections:worklist")).content.decode()

    assert "Letter of 5 Mar not posted yet" in page
    assert f'href="{reverse("collections:letters")}"' in page
