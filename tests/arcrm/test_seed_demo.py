"""`manage.py seed_demo`: a believable demo database, the same every time."""

from __future__ import annotations

import datetime as dt
import email
import hashlib
from decimal import Decimal
from email.utils import mktime_tz, parsedate_tz
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.core.management.color import no_style
from django.db import connection
from django.db.models import Count, F, Max, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from ar_collections.api import IMPORT_PERMISSION
from ar_collections.delivery import message_id
from ar_collections.forms import letters_in_queue
from ar_collections.models import (
    ActionStatus,
    Allocation,
    ApiToken,
    Channel,
    CreditNote,
    Dispute,
    DisputeStatus,
    DocumentCounter,
    DunningAction,
    DunningActionInvoice,
    DunningRun,
    ExceptionRequest,
    ExceptionStatus,
    Invoice,
    InvoiceStatus,
    LateCharge,
    Payment,
    PaymentBehaviour,
    PaymentPlan,
    PlanStatus,
    Promise,
    PromiseStatus,
    RunStatus,
    StepAction,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from ar_collections.worklist import order_rhythms
from ar_collections.workspace_forms import collectors, worklist_owners
from arcrm.dates import format_day
from arcrm.demo import DEMO_PASSWORD, RECENT_DAYS
from arcrm.money import ZERO
from arcrm.roles import COLLECTOR, INTEGRATION, MANAGER, VIEWER
from customers.models import (
    Contact,
    ContactAbsence,
    Customer,
    EventKind,
    Segment,
    TermsType,
    TimelineEvent,
)

TODAY = dt.date(2025, 6, 30)
CUSTOMERS = 60


def seed(*extra: str, seed: int = 7) -> str:
    out = StringIO()
    call_command(
        "seed_demo", f"--customers={CUSTOMERS}", f"--today={TODAY}", f"--seed={seed}", *extra,
        stdout=out,
    )
    return out.getvalue()


@pytest.fixture
def seeded(db) -> str:
    return seed()


def digest() -> str:
    """A fingerprint of everything seeded that does not depend on primary keys
    or the wall clock."""
    rows = [
        Customer.objects.order_by("account_number").values_list(
            "account_number", "name", "legal_name", "industry", "business_description",
            "buying_reasons", "customer_since", "collector__username",
            "relationship_owner__username", "special_bond", "referred_by__account_number",
            "currency", "credit_limit_amount", "terms_type", "payment_terms_days",
            "on_credit_hold", "ap_run_days", "ordering_rhythm", "typical_order_interval_days",
            "notes", "segment", "segment_reason",
        ),
        Contact.objects.order_by("customer__account_number", "name").values_list(
            "customer__account_number", "name", "job_title", "role", "email", "phone",
            "postal_address", "language", "invoice_delivery", "reminder_channel",
            "best_time_to_call", "is_primary_billing", "notes",
        ),
        ContactAbsence.objects.order_by("contact__customer__account_number", "starts_on")
        .values_list("contact__name", "starts_on", "ends_on", "delegate__name", "note"),
        Invoice.objects.order_by("number").values_list(
            "number", "customer__account_number", "issue_date", "due_date", "currency",
            "total_amount", "open_amount", "status", "settled_on", "po_reference",
        ),
        CreditNote.objects.order_by("number").values_list(
            "number", "customer__account_number", "invoice__number", "issued_on", "amount",
            "reason",
        ),
        Payment.objects.order_by("customer__account_number", "received_on", "reference", "amount")
        .values_list("customer__account_number", "received_on", "amount", "method", "reference"),
        Allocation.objects.order_by(
            "invoice__number", "allocated_on", "credit_note__number", "payment__reference", "amount"
        ).values_list(
            "invoice__number", "payment__reference", "credit_note__number", "amount",
            "allocated_on",
        ),
        # The segment changes are stamped with the wall clock by the refresh.
        [(*row[:-1], None if row[1] == EventKind.DUNNING else _without_ids(row[-1])) for row in
         TimelineEvent.objects.exclude(kind=EventKind.SEGMENT_CHANGED)
         .order_by("customer__account_number", "occurred_at", "kind", "summary")
         .values_list("customer__account_number", "kind", "occurred_at", "summary", "details")],
    ]
    fingerprint = hashlib.sha256()
    for query in rows:
        for row in query:
            fingerprint.update(repr(row).encode())
    return fingerprint.hexdigest()


# What the replayed weeks' events name by primary key: the rest of them must be
# the same every time. A dunning event's details hold the notice, whose
# reference is its step's row: its summary says the rest. A worklist event
# names its item, a schedule e-mailed its outgoing mail.
ROW_IDS = {"action", "recipient", "collector", "contact", "item", "mail", "dispute"}


def _without_ids(details):
    if isinstance(details, dict):
        return {k: _without_ids(v) for k, v in details.items() if k not in ROW_IDS}
    if isinstance(details, list):
        return [_without_ids(v) for v in details]
    return details


def wipe_seeded_accounts() -> None:
    """Empty the account tables but keep users and groups.

    TRUNCATE, because the timeline is append-only: PostgreSQL refuses DELETE on it.
    """
    # The dunning runs have no account of their own: they go too (the rest of
    # what the replayed weeks wrote goes with the accounts, by cascade).
    models = [TimelineEvent, Allocation, Payment, CreditNote, Invoice, PaymentBehaviour,
              ContactAbsence, Contact, Customer, DocumentCounter, DunningRun]
    tables = [model._meta.db_table for model in models]
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            # Foreign keys are checked at commit; TRUNCATE refuses while checks are pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for sql in connection.ops.sql_flush(no_style(), tables, allow_cascade=True):
            cursor.execute(sql)
        if postgres:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


# The tables a past day's aged trial balance rebuilds from the ledger (numbers._open_on_sql).
LEDGER_TABLES = ["collections_invoice", "collections_allocation", "collections_dispute", "customers_customer"]


def test_a_seeded_demo_has_its_tables_analyzed_for_the_planner(seeded):
    # The demo seeds then serves at once; until the database has read the new
    # rows (autovacuum may be off or not yet round), PostgreSQL plans as if a
    # table held a row or two, and the aged trial balance as of a past day
    # joined every invoice to every allocation: seconds a page on 300 accounts.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT DISTINCT tablename FROM pg_stats"
                           " WHERE schemaname = current_schema() AND tablename = ANY(%s)", [LEDGER_TABLES])
        else:
            cursor.execute("SELECT DISTINCT tbl FROM sqlite_stat1")
        analyzed = {name for (name,) in cursor.fetchall()}
    assert analyzed >= set(LEDGER_TABLES)


def test_a_small_demo_has_every_segment_in_numbers(seeded):
    counts = dict(Customer.objects.values_list("segment").annotate(n=Count("pk")).order_by())

    assert Customer.objects.count() == CUSTOMERS
    assert {segment: counts.get(segment, 0) >= 3 for segment in Segment.values} == dict.fromkeys(
        Segment.values, True
    )
    assert PaymentBehaviour.objects.filter(computed_on=TODAY).count() == CUSTOMERS
    for segment in Segment:
        assert f"{segment.label}" in seeded


def test_every_invoice_reconciles_to_the_cent_with_what_was_allocated(
    seeded, django_assert_num_queries
):
    paid, open_ = InvoiceStatus.PAID, InvoiceStatus.OPEN
    with django_assert_num_queries(1):
        wrong = list(
            Invoice.objects.annotate(
                allocated=Coalesce(Sum("allocations__amount"), Value(ZERO)),
                last_allocated=Max("allocations__allocated_on"),
            )
            .filter(
                ~Q(open_amount=F("total_amount") - F("allocated"))
                | (Q(status=paid) & ~Q(settled_on=F("last_allocated")))
                | (Q(open_amount=0) & ~Q(status=paid))
                | (Q(status=open_) & Q(settled_on__isnull=False))
                | ~Q(status__in=[paid, open_])
            )
            .values_list("number", flat=True)
        )

    assert wrong == []
    assert Invoice.objects.count() > 20 * CUSTOMERS // 2
    # Open invoices are both overdue and not yet due.
    assert Invoice.objects.overdue(on=TODAY).exists()
    assert Invoice.objects.open().filter(due_date__gte=TODAY).exists()


def test_payments_and_credit_notes_are_allocated_in_full(seeded):
    unallocated_payments = Payment.objects.annotate(
        allocated=Coalesce(Sum("allocations__amount"), Value(ZERO))
    ).exclude(amount=F("allocated"))
    unallocated_notes = CreditNote.objects.annotate(
        allocated=Coalesce(Sum("allocations__amount"), Value(ZERO))
    ).exclude(amount=F("allocated"))

    assert list(unallocated_payments) == []
    assert list(unallocated_notes) == []
    assert CreditNote.objects.filter(invoice__isnull=False).count() >= 2


def test_the_history_has_payment_runs_part_payments_and_credit_notes(seeded):
    payments_per_invoice = Count("allocations", filter=Q(allocations__payment__isnull=False))

    assert Payment.objects.annotate(n=Count("allocations")).filter(n__gt=1).exists()
    assert (
        Invoice.objects.settled().annotate(n=payments_per_invoice).filter(n__gt=1).exists()
    )
    assert Allocation.objects.filter(credit_note__isnull=False).exists()
    # A distressed customer's payment on account leaves the invoice open.
    assert Invoice.objects.open().filter(open_amount__lt=F("total_amount")).exists()
    assert Customer.objects.filter(terms_type=TermsType.STANDARD).count() > CUSTOMERS // 2
    assert Customer.objects.exclude(currency="EUR").exists()


def test_the_same_seed_and_date_give_identical_data(db):
    seed()
    first = digest()

    wipe_seeded_accounts()
    assert Customer.objects.count() == 0
    seed()

    assert digest() == first


def test_another_seed_gives_other_data(db):
    seed(seed=7)
    first = digest()
    wipe_seeded_accounts()
    seed(seed=8)

    assert digest() != first


def test_if_empty_on_a_seeded_database_changes_nothing(seeded):
    before = digest(), User.objects.count(), TimelineEvent.objects.count()

    output = seed("--if-empty")

    assert "seeded nothing" in output
    assert (digest(), User.objects.count(), TimelineEvent.objects.count()) == before


def test_it_refuses_to_seed_over_existing_customers(seeded):
    with pytest.raises(CommandError, match=f"already has {CUSTOMERS} customers"):
        seed()

    assert Customer.objects.count() == CUSTOMERS


def test_it_rejects_a_reference_date_it_cannot_read(db):
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("seed_demo", "--today=30.06.2025", stdout=StringIO())

    assert not Customer.objects.exists()
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("username", "role"),
    [("manager", MANAGER), ("carla", COLLECTOR), ("colin", COLLECTOR), ("cora", COLLECTOR),
     ("viewer", VIEWER), ("sam", VIEWER)],
)
def test_demo_users_sign_in_with_the_demo_password_in_their_role(seeded, username, role):
    user = authenticate(username=username, password=DEMO_PASSWORD)

    assert user is not None
    assert list(user.groups.values_list("name", flat=True)) == [role]
    assert user.is_staff is user.is_superuser is (username == "manager")
    assert authenticate(username=username, password="wrong") is None


def test_the_manager_can_issue_the_erp_a_token_that_records_invoices_right_away(seeded, client):
    erp = User.objects.get(username="erp")
    client.force_login(User.objects.get(username="manager"))

    page = client.get(reverse("collections:api_tokens")).content.decode()
    response = client.post(reverse("collections:api_tokens"), {"name": "ERP", "user": erp.pk})

    assert f'<option value="{erp.pk}">ERP integration (erp)</option>' in page
    assert response.status_code == 302
    token = ApiToken.objects.get()
    assert token.user == erp and erp.has_perm(IMPORT_PERMISSION)
    assert not erp.is_superuser and not erp.is_staff and not erp.has_usable_password()
    assert list(erp.groups.values_list("name", flat=True)) == [INTEGRATION]
    assert not erp.has_perm("customers.change_customer")
    assert erp not in collectors() and erp not in worklist_owners()
    assert "the ERP's user, who signs in nowhere: erp" in seeded and "users created: manager, " in seeded
    assert "erp" not in seeded.split("users created: ")[1].split("\n")[0]


def test_customers_are_spread_over_the_collectors_and_owned_by_sales(seeded):
    per_collector = dict(
        Customer.objects.values_list("collector__username").annotate(n=Count("pk")).order_by()
    )

    assert per_collector == {"carla": 20, "colin": 20, "cora": 20}
    assert Customer.objects.filter(relationship_owner__username="sam").count() > CUSTOMERS // 2


def test_account_cards_are_complete_and_contacts_valid(seeded):
    customers = Customer.objects.annotate(
        n_contacts=Count("contacts"),
        n_primary=Count("contacts", filter=Q(contacts__is_primary_billing=True)),
    )
    for customer in customers:
        assert 1 <= customer.n_contacts <= 4, customer
        assert customer.n_primary == 1, customer
        assert len(customer.buying_reasons) >= 3, customer
        assert customer.business_description and customer.ordering_rhythm, customer
    for contact in Contact.objects.all():
        contact.clean()  # raises on an e-mail reminder without an address, etc.
    assert Customer.objects.filter(referred_by__isnull=False).exists()
    assert Customer.objects.exclude(special_bond="").count() >= 3
    assert Customer.objects.filter(terms_type__in=[TermsType.COD, TermsType.PREPAYMENT]).exists()


def test_the_demo_has_an_order_gap_on_a_worklist_and_rhythms_learned_from_orders(seeded):
    gaps = WorkItem.objects.filter(kind=WorkKind.ORDER_GAP, status=WorkStatus.OPEN)
    rhythms = order_rhythms(on=TODAY).values()

    assert gaps.exists()
    assert all(item.title.endswith("ask how they are") for item in gaps)
    assert any(rhythm.learned and rhythm.interval for rhythm in rhythms)
    assert any(not rhythm.learned for rhythm in rhythms)


def test_an_absence_on_the_reference_date_hands_billing_to_the_stand_in(seeded):
    absence = ContactAbsence.objects.select_related("contact__customer", "delegate").get(
        starts_on__lte=TODAY, ends_on__gte=TODAY, delegate__isnull=False,
        contact__is_primary_billing=True,
    )
    customer = absence.contact.customer

    assert customer.billing_contact(on=TODAY) == absence.delegate
    assert customer.billing_contact(on=absence.ends_on + dt.timedelta(days=1)) == absence.contact
    assert absence.delegate.name in absence.note


def test_every_document_has_its_event_on_the_timeline(seeded):
    def subjects(kind: EventKind) -> set[int]:
        events = TimelineEvent.objects.filter(kind=kind, actor__isnull=True)
        return set(events.values_list("subject_id", flat=True))

    invoices = set(Invoice.objects.values_list("pk", flat=True))
    paid = set(Invoice.objects.settled().values_list("pk", flat=True))

    assert subjects(EventKind.INVOICE_ISSUED) == invoices
    assert subjects(EventKind.INVOICE_PAID) == paid
    assert subjects(EventKind.PAYMENT_RECEIVED) == set(Payment.objects.values_list("pk", flat=True))
    assert subjects(EventKind.CREDIT_NOTE) == set(CreditNote.objects.values_list("pk", flat=True))
    assert TimelineEvent.objects.filter(kind=EventKind.ACCOUNT_CREATED).count() == CUSTOMERS
    first_invoice = Invoice.objects.order_by("issue_date").first()
    issued = TimelineEvent.objects.get(kind=EventKind.INVOICE_ISSUED, subject_id=first_invoice.pk)
    assert issued.occurred_at.date() == first_invoice.issue_date
    assert issued.subject == first_invoice


def test_every_payment_on_the_timeline_names_the_day_it_came_in(seeded):
    """One wording for every payment received, those of the seeding day too."""
    said = {payment.pk: f" received on {format_day(payment.received_on)} ("
            for payment in Payment.objects.all()}
    events = TimelineEvent.objects.filter(kind=EventKind.PAYMENT_RECEIVED)

    assert events.exists()
    assert [e.summary for e in events if said[e.subject_id] not in e.summary] == []


def test_an_invoice_paid_a_day_late_says_1_day_late(seeded):
    """Not "1 days late", which the demo's timelines said dozens of times."""
    paid = TimelineEvent.objects.filter(kind=EventKind.INVOICE_PAID, actor__isnull=True)
    one_day = [e.summary for e in paid if e.details.get("days_late") == 1]
    assert one_day, "the demo has no invoice paid a day late to read"
    assert all(summary.endswith(", 1 day late") for summary in one_day), one_day[:3]
    assert not paid.filter(summary__contains=" 1 days late").exists()
    several = paid.filter(details__days_late__gt=1).first()
    assert several.summary.endswith(f", {several.details['days_late']} days late")


def test_credit_notes_issued_later_do_not_reuse_a_seeded_number(seeded):
    for counter in DocumentCounter.objects.all():
        taken = CreditNote.objects.filter(number__startswith=counter.prefix).count()
        assert counter.next_value == taken + 1
    assert DocumentCounter.objects.exists()


def test_the_last_weeks_are_lived_through_with_dunning_on(seeded):
    """Each of the last nights ran as the nightly schedule runs it: notices
    went out dated on their night, fees were charged where a ladder charges
    them, and work waits for people. Today's run is left to the schedule."""
    runs = DunningRun.objects.order_by("run_date")
    assert list(runs.values_list("run_date", flat=True)) == [
        TODAY - dt.timedelta(days=n) for n in range(RECENT_DAYS, 0, -1)
    ]
    assert set(runs.values_list("status", flat=True)) == {RunStatus.FINISHED}
    # Started when the beat starts them, as the runs page says ("03:30, by the schedule").
    assert {timezone.localtime(r.started_at).time() for r in runs} == {dt.time(3, 30)}
    done = DunningAction.objects.filter(status=ActionStatus.DONE)
    assert done.filter(channel=Channel.EMAIL).exists() and done.filter(channel=Channel.PHONE).exists()
    for action in done.exclude(channel=Channel.INTERNAL):  # a manager's decisions come days later
        assert action.done_at.date() == action.planned_on
    notices = TimelineEvent.objects.filter(kind=EventKind.DUNNING)
    # Today only a payment can withdraw a letter from the print queue.
    today = notices.filter(occurred_at__date__gte=TODAY).exclude(summary__contains=" not posted: ")
    assert notices.exists() and not today.exists()
    assert LateCharge.objects.exists()
    # The ladders reached steps only a manager may take; the approvals hold
    # work for the manager (such a step, or a collector's request), unless a
    # promise or plan made since made the step moot, which then says so.
    holds = DunningAction.objects.filter(step__action__in=[StepAction.CREDIT_HOLD, StepAction.SWITCH_TO_COD])
    assert holds.exists()
    assert all(a.skip_reason for a in holds.filter(status=ActionStatus.SKIPPED))
    assert (DunningAction.objects.filter(status=ActionStatus.AWAITING_APPROVAL).exists()
            or ExceptionRequest.objects.filter(status=ExceptionStatus.PENDING).exists())
    assert "dunning over the last 42 nights" in seeded


def test_the_demo_s_segments_are_set_before_its_weeks_and_changes_dated_on_their_day(seeded):
    """The ladders of the replayed weeks go by segments set as the weeks
    begin, quietly (the accounts were just entered); what has changed since
    is on the timelines as of the reference day's refresh, not later."""
    changes = TimelineEvent.objects.filter(kind=EventKind.SEGMENT_CHANGED)
    morning = timezone.make_aware(dt.datetime.combine(TODAY, dt.time(1)))
    assert set(changes.values_list("occurred_at", flat=True)) <= {morning}
    assert changes.count() < CUSTOMERS // 2  # changes over six weeks, not everyone's first segment
    assert not TimelineEvent.objects.filter(occurred_at__date__gt=TODAY).exists()


def test_a_demo_seeded_in_the_morning_has_nothing_dated_later_that_day(db):
    """Seeded at 07:00 on its reference day, the demo shows no payment
    received at 11:00 nor a request made at 10:00."""
    morning = timezone.make_aware(dt.datetime.combine(TODAY, dt.time(7)))
    with time_machine.travel(morning, tick=False):
        seed()
        later = TimelineEvent.objects.filter(occurred_at__gt=morning).order_by("occurred_at")
        assert [(e.occurred_at.strftime("%H:%M"), e.summary[:60]) for e in later[:3]] == []


def test_every_account_s_figures_count_what_it_owes_today_invoices_of_today_included(seeded):
    invoiced_today = set(Invoice.objects.filter(issue_date=TODAY).values_list("customer", flat=True))
    assert invoiced_today, "the demo issues invoices on its reference date"
    for customer in Customer.objects.select_related("behaviour"):
        owed = Invoice.objects.open().filter(customer=customer, currency=customer.currency)
        assert (customer.behaviour.open_amount, customer.behaviour.open_invoices) == (
            sum((i.open_amount for i in owed), Decimal("0.00")), owed.count()), customer.name


def test_the_demo_has_a_promise_due_today_one_broken_a_dispute_a_plan_and_an_exception_asked(seeded):
    assert Promise.objects.filter(status=PromiseStatus.OPEN, promised_on=TODAY).exists()
    assert Promise.objects.filter(status=PromiseStatus.BROKEN).exists()
    assert Dispute.objects.filter(status=DisputeStatus.OPEN).exists()
    assert PaymentPlan.objects.filter(status=PlanStatus.ACTIVE).exists()
    assert ExceptionRequest.objects.filter(status=ExceptionStatus.PENDING).exists()
    # Each on an account of its own, and each still open on its invoices today.
    promised = Promise.objects.filter(promised_on=TODAY).values_list("customer", flat=True)
    disputed = Dispute.objects.values_list("customer", flat=True)
    assert not set(promised) & set(disputed)
    assert not Invoice.objects.filter(promises__status=PromiseStatus.OPEN).exclude(status=InvoiceStatus.OPEN)


def test_every_account_on_credit_hold_says_who_put_it_on_hold_and_when(seeded):
    """Put there with the card (the seed) or by an approved dunning step (the weeks lived through)."""
    held = Customer.objects.filter(on_credit_hold=True)
    assert held.exists()
    for customer in held:
        event = (TimelineEvent.objects.filter(customer=customer, details__after__on_credit_hold=True)
                 .order_by("occurred_at").first())
        assert event is not None, customer.name
        assert event.actor.username == "manager"
        assert "credit hold" in event.summary.lower()
        assert customer.customer_since <= event.occurred_at.date() <= TODAY
    assert TimelineEvent.objects.filter(kind=EventKind.ACCOUNT_CHANGED, details__after__on_credit_hold=True,
                                        summary__startswith="Put on credit hold by ").exists()


def test_a_notice_lists_what_was_owed_on_its_day_not_what_was_paid_later(seeded):
    """The replayed weeks' payments and credit notes are applied on their own
    day: a notice sent before one lists the invoice it pays, at what was open
    that night, and no invoice issued after it."""
    lines = (DunningActionInvoice.objects.filter(action__status=ActionStatus.DONE)
             .exclude(action__channel=Channel.INTERNAL).select_related("action", "invoice"))
    assert lines.exists()
    for line in lines:
        night = line.action.planned_on
        # Money of the notice's own day arrives after the night's run.
        before = Allocation.objects.filter(invoice=line.invoice, allocated_on__lt=night)
        owed = line.invoice.total_amount - before.aggregate(s=Coalesce(Sum("amount"), ZERO))["s"]
        assert (line.invoice.number, line.open_amount) == (line.invoice.number, owed), night
        assert line.invoice.issue_date <= night
    assert lines.filter(invoice__settled_on__gt=F("action__planned_on")).exists()


def _next_working_day(day: dt.date) -> dt.date:
    day += dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def test_letters_are_posted_the_working_day_after_they_are_written(seeded):
    """As a team posts them, through the print queue's "Mark printed": only
    the last working day's letters (and the weekend's) still wait to be
    posted."""
    letters = (DunningAction.objects.filter(channel=Channel.LETTER, status=ActionStatus.DONE)
               .exclude(letter_pdf=""))
    printed = letters.filter(printed_at__isnull=False)
    assert printed.exists()
    for letter in printed:
        written = timezone.localtime(letter.done_at).date()
        assert timezone.localtime(letter.printed_at).date() == _next_working_day(written)
    posted = TimelineEvent.objects.filter(kind=EventKind.DUNNING, summary__contains=" posted on ")
    assert posted.count() == printed.count()
    last_working_day = TODAY - dt.timedelta(days=3)  # TODAY is a Monday
    assert TODAY.weekday() == 0
    for letter in letters_in_queue():
        assert timezone.localtime(letter.done_at).date() >= last_working_day


# The last line of a demo address and how its attention line begins, in the country's own words.
ADDRESS_WORDS = {
    "Deutschland": "z. Hd. ", "Nederland": "t.a.v. ", "België": "t.a.v. ", "Belgique": "À l'attention de ",
    "France": "À l'attention de ", "España": "A la atención de ", "Italia": "Alla c.a. ",
    "Ireland": "Attn. ", "United Kingdom": "Attn. ", "United States": "Attn. ",
}


def test_an_address_block_is_written_in_its_country_s_words(seeded):
    seen = set()
    for address in Contact.objects.exclude(postal_address="").values_list("postal_address", flat=True):
        lines = address.splitlines()
        assert lines[-1] in ADDRESS_WORDS, address
        assert lines[1].startswith(ADDRESS_WORDS[lines[-1]]), address
        seen.add(lines[-1])
    assert {"Deutschland", "Nederland"} <= seen


def test_the_mail_folder_dates_each_e_mail_on_the_night_it_was_sent(db, settings, tmp_path):
    """Without a mail server the notices land in the mail folder (`make run`):
    each in a file named after its night, with the Date of its night."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = tmp_path
    seed()
    sent = {}
    for path in tmp_path.iterdir():
        for raw in path.read_bytes().split(b"-" * 79 + b"\n"):
            if raw.strip():
                message = email.message_from_bytes(raw)
                sent[message["Message-ID"]] = (path.name, mktime_tz(parsedate_tz(message["Date"])))
    emailed = DunningAction.objects.filter(channel=Channel.EMAIL, status=ActionStatus.DONE)
    assert emailed.exists()
    for action in emailed:
        name, sent_at = sent[message_id(action.pk)]
        assert sent_at == action.done_at.timestamp()
        assert name.startswith(f"{timezone.localtime(action.done_at):%Y%m%d-%H%M%S}-")
    assert settings.EMAIL_BACKEND == "django.core.mail.backends.filebased.EmailBackend"
