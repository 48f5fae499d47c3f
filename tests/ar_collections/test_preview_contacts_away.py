"""The account page's preview of a reminder, a letter or a call says whom it
goes to when the billing contact is away on its day: her stand-in, or, with
everyone it could go to away, what the send does then; and how it goes when
not as the step says: with no billing contact, or none reachable by the
step's channel, a letter or a call task for the collector. By the rule the
send itself follows (channels.route_for), so the page never names someone
the step will not reach, nor a channel it will not go by."""

import datetime as dt

from django.urls import reverse

from ar_collections.dunning import next_step
from ar_collections.models import Channel, DunningAction, StepAction
from customers.models import CollectorAbsence, ContactAbsence, EventKind, ReminderChannel, Segment

from .conftest import DUE, frozen


def days(n: int) -> dt.date:
    return DUE + dt.timedelta(days=n)


def preview_on_page(client, account) -> str:
    page = client.get(reverse("customers:detail", args=[account.pk])).content.decode()
    preview = page[page.index('id="dunning-preview"'):]
    return " ".join(preview[:preview.index("</section>")].split())


def _away(make_account, make_contact, segment: str = Segment.PROMPT, *, first: int, last: int):
    """An account whose Anna Clerk is away from days(first) to days(last), Ben Backup standing in."""
    account = make_account(segment)
    anna = account.contacts.get(name="Anna Clerk")
    ben = make_contact(account, name="Ben Backup", email="ben@acme.test")
    ContactAbsence.objects.create(contact=anna, starts_on=days(first), ends_on=days(last), delegate=ben)
    return account


def test_the_preview_of_a_reminder_whose_billing_contact_and_stand_in_are_away_says_it_becomes_a_call_task(
    make_account, make_contact, plan_and_deliver, smtp_server, client, collector
):
    """Ben's own absence (days 2 to 4, to 6 Mar) was recorded after Anna named him."""
    account = _away(make_account, make_contact, first=0, last=10)
    ContactAbsence.objects.create(contact=account.contacts.get(name="Ben Backup"), starts_on=days(2),
                                  ends_on=days(4))
    client.force_login(collector)

    with frozen(days(0)):
        preview = next_step(account, on=days(0))
        page = preview_on_page(client, account)

    said = ("Anna Clerk away until 12 Mar, and Ben Backup, written to instead, away until 6 Mar: "
            "it becomes a call task for carla.")
    assert (preview.step.action, preview.due_on) == (StepAction.EMAIL, days(3))
    assert preview.note == said
    assert said in page
    plan_and_deliver(days(3))
    assert smtp_server.messages == []
    action = DunningAction.objects.get(customer=account)
    assert (action.channel, action.recipient) == (Channel.PHONE, None)


def test_the_preview_of_a_reminder_names_whom_an_absent_billing_contact_asked_us_to_write_to(
    make_account, make_contact, plan_and_deliver, smtp_server, client, collector
):
    account = _away(make_account, make_contact, first=0, last=10)
    client.force_login(collector)

    with frozen(days(0)):
        preview = next_step(account, on=days(0))
        page = preview_on_page(client, account)

    assert preview.note == "Anna Clerk away until 12 Mar: goes to Ben Backup."
    assert "Anna Clerk away until 12 Mar: goes to Ben Backup." in page
    plan_and_deliver(days(3))
    assert smtp_server.messages[-1]["To"] == "Ben Backup <ben@acme.test>"


def test_the_preview_of_a_call_with_everyone_it_could_go_to_away_says_the_task_names_nobody_to_ask_for(
    make_account, make_contact, plan_and_deliver, smtp_server
):
    """An occasional slip's second step is a call; Anna is away from day 10
    naming Ben, who is away from day 12."""
    account = _away(make_account, make_contact, Segment.OCCASIONAL_SLIP, first=10, last=20)
    ContactAbsence.objects.create(contact=account.contacts.get(name="Ben Backup"), starts_on=days(12),
                                  ends_on=days(20))
    plan_and_deliver(days(5))

    with frozen(days(6)):
        preview = next_step(account, on=days(6))

    assert preview.step.action == StepAction.CALL_TASK
    assert preview.note == ("Anna Clerk away until 22 Mar, and Ben Backup, written to instead, away until "
                            "22 Mar: the call task names nobody to ask for.")
    plan_and_deliver(preview.due_on)
    call = DunningAction.objects.get(customer=account, step__action=StepAction.CALL_TASK)
    assert (call.channel, call.recipient, call.subject[:16]) == (Channel.PHONE, None, "Call Acme Tools ")


def test_the_preview_of_a_reminder_to_a_billing_contact_away_who_named_nobody_says_nothing(
    make_account, plan_and_deliver, smtp_server
):
    """Written to all the same, as the send does ("keep writing to this contact")."""
    account = make_account(Segment.PROMPT)
    ContactAbsence.objects.create(contact=account.contacts.get(name="Anna Clerk"), starts_on=days(0),
                                  ends_on=days(10))

    with frozen(days(0)):
        preview = next_step(account, on=days(0))

    assert (preview.step.action, preview.note) == (StepAction.EMAIL, "")
    plan_and_deliver(days(3))
    assert smtp_server.messages[-1]["To"] == "Anna Clerk <anna@acme.test>"


# --- how it goes when not as the step says -----------------------------------


def call_tasks(account) -> list[str]:
    return [s for s in account.events.filter(kind=EventKind.DUNNING).values_list("summary", flat=True)
            if s.startswith("Call task")]


def test_the_preview_of_a_reminder_to_an_account_with_no_billing_contact_names_whose_call_task_it_becomes(
    make_account, plan_and_deliver, smtp_server, client, collector, django_assert_num_queries
):
    """The page said nothing, and showed an e-mail reminder, for a step that
    became a call task."""
    collector.first_name, collector.last_name = "Carla", "Berg"
    collector.save()
    account = make_account(Segment.PROMPT)
    account.contacts.all().delete()
    client.force_login(collector)

    with frozen(days(0)):
        preview = next_step(account, on=days(0))
        # As many as with a billing contact on file: no contact's absences to
        # read, and one query for whether the collector is away on the step's day.
        # (31: the open cycle, the pauses and the open invoices are read once
        # for the Dunning card, the preview and the invoices; one more for the
        # Payments card, which has none to list; 30 with the ladders the
        # preview above read kept, their stamp read in place of them; 32 with
        # the account's open work items, and whether a request waiting for a
        # manager holds the step.)
        with django_assert_num_queries(32):
            page = preview_on_page(client, account)

    said = "No billing contact on file: it becomes a call task for Carla Berg."
    assert (preview.step.action, preview.due_on, preview.note) == (StepAction.EMAIL, days(3), said)
    assert said in page
    plan_and_deliver(days(3))
    assert smtp_server.messages == []
    action = DunningAction.objects.get(customer=account)
    assert (action.channel, action.recipient) == (Channel.PHONE, None)
    assert call_tasks(account)[0].startswith("Call task for Carla Berg: call Acme Tools about")


def test_the_preview_names_who_covers_for_a_collector_away_on_the_step_s_day(
    make_account, plan_and_deliver, smtp_server, collector, other_collector
):
    account = make_account(Segment.PROMPT)
    account.contacts.all().delete()
    CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                    starts_on=days(2), ends_on=days(5))

    with frozen(days(0)):
        preview = next_step(account, on=days(0))

    assert preview.note == "No billing contact on file: it becomes a call task for otto (covering for carla)."
    plan_and_deliver(days(3))
    assert call_tasks(account)[0].startswith("Call task for otto (covering for carla): call Acme Tools")


def test_the_preview_of_a_reminder_to_a_billing_contact_without_an_e_mail_address_says_it_goes_as_a_letter(
    make_account, plan_and_deliver, smtp_server
):
    account = make_account(Segment.PROMPT, email="")

    with frozen(days(0)):
        preview = next_step(account, on=days(0))

    assert preview.step.action == StepAction.EMAIL
    assert preview.note == "No e-mail address: it goes as a letter."
    plan_and_deliver(days(3))
    action = DunningAction.objects.get(customer=account)
    assert (action.channel, action.recipient.name) == (Channel.LETTER, "Anna Clerk")


def test_the_preview_of_a_reminder_to_a_billing_contact_with_no_address_says_it_becomes_a_call_task(
    make_account, plan_and_deliver, smtp_server
):
    account = make_account(Segment.PROMPT, email="", postal_address="")

    with frozen(days(0)):
        preview = next_step(account, on=days(0))

    assert preview.note == "No e-mail or postal address: it becomes a call task for carla."
    plan_and_deliver(days(3))
    action = DunningAction.objects.get(customer=account)
    assert (action.channel, action.recipient.name) == (Channel.PHONE, "Anna Clerk")
    assert call_tasks(account)[0].startswith("Call task for carla: call Anna Clerk about")


def test_the_preview_of_a_reminder_to_a_stand_in_who_prefers_letters_says_both(
    make_account, make_contact, plan_and_deliver, smtp_server
):
    account = _away(make_account, make_contact, first=0, last=10)
    account.contacts.filter(name="Ben Backup").update(reminder_channel=ReminderChannel.LETTER,
                                                     postal_address="Acme Tools\nMain Street 1")

    with frozen(days(0)):
        preview = next_step(account, on=days(0))

    assert preview.note == ("Anna Clerk away until 12 Mar: goes to Ben Backup. "
                            "Ben Backup prefers letters: it goes as a letter.")
    plan_and_deliver(days(3))
    action = DunningAction.objects.get(customer=account)
    assert (action.channel, action.recipient.name) == (Channel.LETTER, "Ben Backup")


def test_the_account_page_names_who_covers_for_a_collector_away_on_the_step_s_day_in_pinned_queries(
    make_account, client, collector, other_collector, django_assert_num_queries
):
    """Who covers is read in one query with the chain followed (cover.working_for):
    32, as with the collector at work above, where reading the stand-in apart
    from the absences took one more."""
    account = make_account(Segment.PROMPT)
    account.contacts.all().delete()
    CollectorAbsence.objects.create(user=collector, stand_in=other_collector, recorded_by=collector,
                                    starts_on=days(2), ends_on=days(5))
    client.force_login(collector)

    with frozen(days(0)):
        next_step(account, on=days(0))  # the ladders read and kept, as in the pin above
        with django_assert_num_queries(32):
            page = preview_on_page(client, account)

    assert "No billing contact on file: it becomes a call task for otto (covering for carla)." in page
