"""Demo data: a few hundred believable B2B accounts with 18 months of history.

Everything comes from one seeded `random.Random` and a reference date, so the
same seed and date always give the same customers, numbers, amounts and dates
(a screenshot, a bug report and a demo can all point at the same account).

Each customer is given a payer archetype up front and its invoices and
payments are written to match it, with margins wide enough that the nightly
segmentation (ar_collections.segmentation, run through
services.behaviour_refresh) lands every archetype in its segment:

- prompt: pays on or before the due date;
- occasional slip: on time but for one or two invoices 5–15 days late;
- systematic late: most invoices 11–29 days late (older history up to 40);
- distressed: paid on time, then slower and slower, then stopped: everything
  due in the last few months is open and 100+ days overdue;
- special bond: a bond written on the card; pays however it pays;
- new: a customer for under five months, or one that orders twice a year.

The last weeks are then lived through as the product would have lived them
(`_recent_weeks`): each night the daily check and the dunning run (planning
and delivery, e-mails to the demo mail folder, letters to the print queue,
late fees and interest on the ladders that charge them), and by day the
letters of the working day before posted, the collectors' promises, a
dispute, a payment plan and an exception request, and the day's invoices,
credit notes and payments, written on their day so that each night's
notices ask for what was owed that night. The clock reads those days while
it replays them, so every event, letter, e-mail and charge carries its own
date. Today's run is left to the nightly schedule, or to a manager on the
Runs page.

Only the caller's transaction makes this all-or-nothing; `seed` opens one.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import os
import random
import unicodedata
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from email.utils import formatdate
from functools import partial

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.core.mail.backends import filebased
from django.db import connections, transaction
from django.db.models import Count, Q
from django.utils import timezone

from ar_collections import workspace
from ar_collections.delivery import (
    action_approve,
    actions_deliver,
    letters_mark_printed,
    letters_withdraw_moot,
)
from ar_collections.dunning import run_finish_if_done, run_plan, run_start
from ar_collections.forms import letters_in_queue
from ar_collections.models import (
    ActionStatus,
    Allocation,
    CallOutcome,
    Channel,
    CreditNote,
    Department,
    DisputeReason,
    DocumentCounter,
    DunningAction,
    ExceptionKind,
    Invoice,
    InvoiceStatus,
    LateCharge,
    Payment,
    PaymentMethod,
    StepAction,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from ar_collections.segmentation import (
    DISTRESSED,
    NEW,
    OCCASIONAL_SLIP,
    PROMPT,
    SPECIAL_BOND,
    SYSTEMATIC_LATE,
)
from ar_collections.services import action_decline, behaviour_refresh, credit_terms_in_force_skip
from ar_collections.timeline import events_link, invoice_issued, invoice_paid_said
from ar_collections.worklist import worklist_refresh
from arcrm.money import format_money
from arcrm.roles import COLLECTOR, INTEGRATION, MANAGER, VIEWER
from arcrm.text import person_name
from customers.models import (
    Contact,
    ContactAbsence,
    ContactRole,
    Customer,
    EventKind,
    Industry,
    InvoiceDelivery,
    Language,
    ReminderChannel,
    Segment,
    TermsType,
    TimelineEvent,
)
from customers.services import account_opened

DEMO_PASSWORD = "arcrm-demo"
DEFAULT_SEED = 2024
DEFAULT_CUSTOMERS = 300
# Eighteen months of invoices and payments before the reference date.
HISTORY_DAYS = 548
# The nights (and days) lived through with dunning on, up to the reference date.
RECENT_DAYS = 42
# Days before the reference date of the collectors' first scene (`_scenes`).
FIRST_SCENE = 20
# Rows per INSERT: PostgreSQL takes at most 65,535 parameters per statement and
# a timeline event has nine columns; 1,000 rows stay well below on every table.
BATCH_SIZE = 1_000

# username, first name, last name, group, staff + superuser (the admin works for every model)
DEMO_USERS = [
    ("manager", "Maren", "Holt", MANAGER, True),
    ("carla", "Carla", "Jensen", COLLECTOR, False),
    ("colin", "Colin", "Byrne", COLLECTOR, False),
    ("cora", "Cora", "Vidal", COLLECTOR, False),
    ("viewer", "Vic", "Lammers", VIEWER, False),
    ("sam", "Sam", "Okafor", VIEWER, False),  # sales: owns the commercial relationships
]
COLLECTORS = ["carla", "colin", "cora"]
# The ERP's own user, whom a manager issues the ERP's token for on Collections ›
# API tokens: a token never acts as a superuser (api.api_token_user_refusal), so
# not as the demo's manager. Its group reads accounts and records invoices and
# payments, and no more; it works no list, so no picker of people offers it.
# Nobody signs in as it: it has no usable password.
ERP_USER = ("erp", "ERP", "integration", INTEGRATION)


@dataclass
class Summary:
    today: dt.date
    seed: int
    customers: int
    contacts: int
    absences: int
    invoices: int
    open_invoices: int
    payments: int
    credit_notes: int
    events: int
    dunning: dict[str, int]
    users_created: list[str]
    users_reused: list[str]
    segments: dict[str, int]

    def lines(self) -> list[str]:
        users = ", ".join(self.users_created) or "none"
        out = [
            f"Demo data as of {self.today.isoformat()} (seed {self.seed}):",
            f"  {self.customers} customers, {self.contacts} contacts ({self.absences} absences)",
            f"  {self.invoices} invoices ({self.open_invoices} open), {self.payments} payments, "
            f"{self.credit_notes} credit notes, {self.events} timeline events",
            f"  dunning over the last {RECENT_DAYS} nights: {self.dunning['emailed']} e-mails, "
            f"{self.dunning['letters']} letters, {self.dunning['call_tasks']} call tasks, "
            f"{self.dunning['waiting']} steps waiting for a person, {self.dunning['charges']} late charges",
            f"  users created: {users} (password {DEMO_PASSWORD!r})",
        ]
        if self.users_reused:
            out.append(
                f"  users already there, password unchanged: {', '.join(self.users_reused)}"
            )
        out.append(f"  the ERP's user, who signs in nowhere: {ERP_USER[0]} (issue its token on "
                   "Collections › API tokens)")
        out.append("  segments:")
        out += [f"    {Segment(s).label:<22} {n}" for s, n in self.segments.items()]
        return out


def seed(*, customers: int, seed: int, today: dt.date) -> Summary:
    """Create the demo users and `customers` accounts with their history, then
    compute payment behaviour and segments as of `today`. All or nothing."""
    with transaction.atomic():
        users, created, reused = _demo_users()
        builder = _Builder(random.Random(seed), today=today, users=users)
        builder.plan(customers)
        builder.save()
        dunning = _recent_weeks(users, builder, today=today)
    # The demo serves as soon as it is seeded, before the database would read
    # the new rows of its own accord (if autovacuum runs at all): without the
    # counts, PostgreSQL plans as if each table held a row or two, and the aged
    # trial balance as of a past day took seconds a statement on 300 accounts.
    with connections[Customer.objects.db].cursor() as cursor:
        cursor.execute("ANALYZE")
    segments = dict(
        Customer.objects.values_list("segment").annotate(n=Count("pk")).order_by("segment")
    )
    return Summary(
        today=today,
        seed=seed,
        customers=len(builder.accounts),
        contacts=sum(len(a.contacts) for a in builder.accounts),
        absences=len(builder.absences),
        invoices=sum(len(a.bills) for a in builder.accounts),
        open_invoices=sum(
            1 for a in builder.accounts for b in a.bills if b.invoice.status == InvoiceStatus.OPEN
        ),
        payments=sum(len(a.receipts) for a in builder.accounts),
        credit_notes=sum(len(a.credits) for a in builder.accounts),
        events=len(builder.events),
        dunning=dunning,
        users_created=created,
        users_reused=reused,
        segments={s.value: segments.get(s.value, 0) for s in Segment},
    )


DEPARTMENTS = [
    ("Logistics", "logistics@example.com", ["our_delivery", "quantity"]),
    ("Customer service", "service@example.com", ["our_service", "quality"]),
    ("Sales", "sales@example.com", ["price", "not_ordered"]),
    ("Billing", "billing@example.com", ["duplicate"]),
]


def _recent_weeks(users: dict[str, User], builder: _Builder, *, today: dt.date) -> dict[str, int]:
    """Live through the last RECENT_DAYS (`_days_live`), today's worklists
    made. Returns what the runs did."""
    for name, email, reasons in DEPARTMENTS:
        Department.objects.get_or_create(name=name, defaults={"email": email, "reasons": reasons})
    with _mail_folder_dated():
        _days_live(users, builder, today=today)
    with _clock(today, hour=10):
        worklist_refresh(on=today)
    done = Q(status=ActionStatus.DONE)
    return {
        **DunningAction.objects.aggregate(
            emailed=Count("pk", filter=done & Q(channel=Channel.EMAIL)),
            letters=Count("pk", filter=done & Q(channel=Channel.LETTER)),
            call_tasks=Count("pk", filter=done & Q(channel=Channel.PHONE)),
            waiting=Count("pk", filter=Q(status__in=[ActionStatus.IN_REVIEW,
                                                     ActionStatus.AWAITING_APPROVAL])),
        ),
        "charges": LateCharge.objects.count(),
    }


def _days_live(users: dict[str, User], builder: _Builder, *, today: dt.date) -> None:
    """Each night the daily check and the dunning run; each working day the
    letters of the day before posted; each day the collectors' work of that
    day (`_scenes`) and the day's invoices, credit notes and payments. Today
    gets its check, not its run."""
    # Each scene chooses its account on its own day (_Chooser).
    scenes = _scenes(users, today=today, still_open=builder.open_today)
    for back in range(RECENT_DAYS, -1, -1):
        day = today - dt.timedelta(days=back)
        if back in (RECENT_DAYS, 0):
            # The segments the ladders go by: as the weeks begin (quietly, the
            # accounts were just entered), and as of today, each change on
            # its account's timeline, dated this morning.
            with _clock(day, hour=1):
                behaviour_refresh(on=day, record=back == 0)
        # As the beat schedule has them by default (settings.CELERY_BEAT_SCHEDULE).
        with _clock(day, hour=2, minute=30):
            workspace.commitments_check(on=day)
        if day < today:
            with _clock(day, hour=3, minute=30):
                _night_run(day)
            if day.weekday() < 5:
                with _clock(day, hour=9):
                    _letters_post(day)
        with _clock(day, hour=10):
            for scene in scenes.get(day, []):
                scene()
        with _clock(day, hour=11):
            builder.documents_write(on=day)
            # As recording a payment does: a letter not yet posted whose
            # invoices it settles leaves the print queue...
            letters_withdraw_moot(customer_ids=builder.paid_on(day))
            if back == 0:
                # ... and the account's figures include the day's documents at
                # once, as an import's do: the money in, and the invoices out.
                behaviour_refresh(on=day, customer_ids=builder.changed_on(day))
        if day < today:
            with _clock(day, hour=16):
                _team_works_its_lists(day, manager=users["manager"])


# What the demo's collectors hear when they make the calls dunning asks for.
CALLS = [
    (CallOutcome.REACHED, "Asked for payment; they will check with their accounts team."),
    (CallOutcome.VOICEMAIL, "Left a message asking them to call back about the overdue invoices."),
    (CallOutcome.NO_ANSWER, ""),
]


def _team_works_its_lists(day: dt.date, *, manager: User) -> None:
    """By the afternoon the collectors have made the calls dunning asked for
    two days before, and the manager has weighed the reviews and most of the
    credit holds that have waited three days: the demo's lists are today's
    work, not six weeks of it, with some decisions left to try."""
    calls = (WorkItem.objects.filter(status=WorkStatus.OPEN, kind=WorkKind.CALL,
                                     due_on__lte=day - dt.timedelta(days=2))
             .select_related("customer", "assignee").order_by("customer__account_number"))
    for item in calls:
        outcome, notes = CALLS[zlib.crc32(item.customer.account_number.encode()) % len(CALLS)]
        workspace.call_log(customer=item.customer, actor=item.assignee, outcome=outcome, notes=notes, on=day,
                           contact=item.customer.billing_contact(on=day))
    waiting = (DunningAction.objects.filter(status=ActionStatus.AWAITING_APPROVAL,
                                            planned_on__lte=day - dt.timedelta(days=3))
               .select_related("customer", "step").order_by("pk"))
    for action in waiting:
        weighs = zlib.crc32(action.customer.account_number.encode()) % 3
        if action.step.action == StepAction.MANAGER_REVIEW:
            action_approve(action=action, manager=manager, note="Looked at the account: the ladder goes on.")
        elif weighs == 0:
            action_approve(action=action, manager=manager, note="Nothing paid in months: hold until a plan.")
        elif weighs == 1:
            action_decline(action=action, manager=manager,
                           note="They buy every week and have paid before: a call from sales first.")
        # The rest wait for the demo's manager, in the approvals queue.


def _letters_post(day: dt.date) -> None:
    """The letters written before `day`, a working day, printed and posted
    that morning by the collectors of their accounts, through the print
    queue's "Mark printed": the queue holds only the last working day's
    letters (and the weekend's), as a team that posts every morning leaves it."""
    letters = (letters_in_queue().filter(done_at__lt=_at(day, 0))
               .select_related("customer__collector").order_by("pk"))
    by_collector: dict[User, list[int]] = {}
    for letter in letters:
        by_collector.setdefault(letter.customer.collector, []).append(letter.pk)
    for collector, letter_ids in by_collector.items():
        letters_mark_printed(letter_ids=letter_ids, actor=collector)


def _night_run(day: dt.date) -> None:
    """The nightly run of `day`, planned and delivered in this process."""
    run = run_start(run_date=day)
    run_plan(run=run)
    actions_deliver(action_ids=list(run.actions.filter(status=ActionStatus.PLANNED).order_by("pk")
                                    .values_list("pk", flat=True)))
    run_finish_if_done(run_id=run.pk)
    # As the refresh after a real run does: terms already in force ask no manager.
    credit_terms_in_force_skip()


@contextlib.contextmanager
def _clock(day: dt.date, *, hour: int, minute: int = 0):
    """The clock at `hour`:`minute` on `day` for the code run under it: planning,
    delivery and every record they write read today's date and time from
    django.utils.timezone.now. For the demo's replay of days gone by only."""
    real = timezone.now
    # Never later than the real time: a demo seeded at 7 in the morning has
    # nothing dated at 10.
    moment = min(_at(day, hour, minute), real())
    timezone.now = lambda: moment
    try:
        yield
    finally:
        timezone.now = real


# Django's mail folder, the default without a mail server (settings.EMAIL_BACKEND).
FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"


class _ReplayMailFolder(filebased.EmailBackend):
    """The mail folder as the replayed nights fill it: each file named and
    dated, and each message's Date set, by the replay's clock (`_clock`)
    where Django's folder reads the wall clock. What is written is the
    e-mail delivery built, as it built it."""

    def write_message(self, message):
        message.extra_headers.setdefault(
            "Date", formatdate(timezone.now().timestamp(), localtime=settings.EMAIL_USE_LOCALTIME)
        )
        super().write_message(message)

    def _get_filename(self):
        if self._fname is None:
            name = f"{timezone.localtime():%Y%m%d-%H%M%S}-{abs(id(self))}.log"
            self._fname = os.path.join(self.file_path, name)
        return self._fname

    def close(self):
        written = self.stream is not None
        super().close()
        if written:
            moment = timezone.now().timestamp()
            os.utime(self._fname, (moment, moment))


@contextlib.contextmanager
def _mail_folder_dated():
    """The replay's e-mails in files of the nights that sent them, when they
    go to the mail folder; a mail server gets them as they are sent."""
    if settings.EMAIL_BACKEND != FILE_BACKEND:
        yield
        return
    settings.EMAIL_BACKEND = f"{__name__}.{_ReplayMailFolder.__name__}"
    try:
        yield
    finally:
        settings.EMAIL_BACKEND = FILE_BACKEND


def _scenes(users: dict[str, User], *, today: dt.date, still_open: Callable[[], set[int]]
            ) -> dict[dt.date, list]:
    """Each collector's work over the last weeks, by the day it was done: a
    promise broken ten days ago, a dispute waiting for our logistics team, a
    promise made a week ago and due today, a payment plan in good standing
    and an exception waiting for a manager; each scene on an account of its
    own, as far as the collector has accounts behind that day."""
    day = dt.timedelta(days=1)
    scenes: dict[dt.date, list] = {}

    def on(when: dt.date, scene) -> None:
        scenes.setdefault(when, []).append(scene)

    for username in COLLECTORS:
        collector = users[username]
        choose = _Chooser(collector, still_open)
        for made, due in ((FIRST_SCENE, 10), (7, 0)):
            on(today - made * day, partial(_promise, choose, collector, made_on=today - made * day,
                                           promised_on=today - due * day))
        on(today - 10 * day, partial(_dispute, choose, collector, on=today - 10 * day))
        on(today - 5 * day, partial(_plan, choose, users["manager"], on=today - 5 * day))
        on(today, partial(_exception, choose, collector, on=today))
    return scenes


class _Chooser:
    """The account for a collector's scene, chosen on the scene's own day:
    the first not given a scene yet with invoices overdue that day which the
    replay leaves open to the demo's last day. One it pays meanwhile would
    have kept the promise, ended the dispute or completed the plan before
    anyone saw them."""

    def __init__(self, collector: User, still_open: Callable[[], set[int]]) -> None:
        self.collector, self.still_open, self.given = collector, still_open, set()

    def __call__(self, on: dt.date) -> tuple[Customer, list[Invoice]] | None:
        still_open = self.still_open()
        for customer in (Customer.objects.filter(collector=self.collector).exclude(pk__in=self.given)
                         .order_by("account_number")):
            invoices = list(customer.invoices.overdue(on=on).filter(currency=customer.currency,
                                                                    pk__in=still_open).order_by("due_date"))
            if invoices:
                self.given.add(customer.pk)
                return customer, invoices
        return None


def _promise(choose: _Chooser, collector: User, *, made_on: dt.date, promised_on: dt.date) -> None:
    """A promise to pay what the oldest overdue invoice owes that day."""
    if chosen := choose(made_on):
        customer, (invoice, *_) = chosen
        workspace.promise_record(customer=customer, actor=collector, amount=invoice.open_amount,
                                 promised_on=promised_on, invoices=[invoice], on=made_on)


def _dispute(choose: _Chooser, collector: User, *, on: dt.date) -> None:
    """A dispute over the oldest overdue invoice, for our logistics team."""
    if chosen := choose(on):
        customer, (invoice, *_) = chosen
        workspace.dispute_open(
            customer=customer, actor=collector, invoice=invoice, on=on, reason=DisputeReason.OUR_DELIVERY,
            description="Goods arrived two weeks late; the customer missed its own delivery date.",
        )


def _plan(choose: _Chooser, manager: User, *, on: dt.date) -> None:
    """A two-instalment plan over what the overdue invoices owe that day."""
    if not (chosen := choose(on)):
        return
    customer, invoices = chosen
    day = dt.timedelta(days=1)
    total = sum((i.open_amount for i in invoices), Decimal("0"))
    half = (total / 2).quantize(Decimal("0.01"))
    workspace.plan_propose(
        customer=customer, actor=manager, invoices=invoices, on=on,
        instalments=[(on + 15 * day, half), (on + 45 * day, total - half)],
        note="Agreed on the phone with the owner.",
    )


def _exception(choose: _Chooser, collector: User, *, on: dt.date) -> None:
    """A pause of six weeks asked of a manager."""
    if chosen := choose(on):
        workspace.exception_request(
            customer=chosen[0], actor=collector, kind=ExceptionKind.PAUSE, on=on,
            pause_until=on + dt.timedelta(days=45),
            reason="Owner asks for six weeks while a large order is paid.",
        )


def _demo_users() -> tuple[dict[str, User], list[str], list[str]]:
    """The demo users by username; existing ones are reused and keep their password."""
    existing = {u.username: u for u in User.objects.filter(
        username__in=[u[0] for u in DEMO_USERS] + [ERP_USER[0]])}
    groups = {g.name: g for g in Group.objects.filter(name__in=[MANAGER, COLLECTOR, VIEWER, INTEGRATION])}
    # One hash for all: PBKDF2 is deliberately slow (~0.5 s each) and the demo
    # password is public anyway, so a salt per user would buy nothing here.
    password = make_password(DEMO_PASSWORD)
    users, created, reused = {}, [], []
    for username, first, last, role, admin in [*DEMO_USERS, (*ERP_USER, False)]:
        user = existing.get(username)
        if user is None:
            user = User.objects.create(
                username=username,
                first_name=first,
                last_name=last,
                email=f"{username}@arcrm.example",
                password=password if username != ERP_USER[0] else make_password(None),
                is_staff=admin,
                is_superuser=admin,
            )
            if username != ERP_USER[0]:  # listed with the logins, which it is not
                created.append(username)
        elif username != ERP_USER[0]:
            reused.append(username)
        user.groups.add(groups[role])
        users[username] = user
    return users, created, reused


# --- Word lists ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Country:
    name: str
    languages: tuple[str, ...]
    currency: str
    tld: str
    phone_prefix: str
    legal_forms: tuple[str, ...]
    cities: tuple[tuple[str, str], ...]  # (city, postcode)
    streets: tuple[str, ...]
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    address: str  # format with number, street, postcode, city; the country's name follows
    ap_mailbox: str
    # By the contact's language (else the country's first): how an address
    # block says "for the attention of", and the country's name on its last
    # line, in the country's own words as its post office reads them.
    postal_words: dict[str, tuple[str, str]]


_DE_FIRST = ("Anna", "Jonas", "Katrin", "Lukas", "Sabine", "Thomas", "Julia", "Markus", "Birgit",
             "Stefan", "Lena", "Uwe", "Petra", "Florian")
_DE_LAST = ("Müller", "Schmidt", "Weber", "Wagner", "Becker", "Hoffmann", "Schäfer", "Koch",
            "Richter", "Klein", "Wolf", "Neumann", "Krüger", "Brandt")
_NL_FIRST = ("Sanne", "Daan", "Femke", "Joost", "Marieke", "Bram", "Lotte", "Pieter", "Anouk",
             "Ruben", "Ingrid", "Wouter")
_NL_LAST = ("de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder",
            "Bos", "Vos", "Peters", "Hendriks")
_FR_FIRST = ("Camille", "Julien", "Claire", "Nicolas", "Sophie", "Mathieu", "Élodie", "Antoine",
             "Isabelle", "Hugo", "Céline", "Laurent")
_FR_LAST = ("Martin", "Bernard", "Dubois", "Moreau", "Laurent", "Lefèvre", "Girard", "Fontaine",
            "Rousseau", "Mercier", "Blanc", "Garnier")
_ES_FIRST = ("Lucía", "Javier", "Marta", "Pablo", "Carmen", "Diego", "Elena", "Sergio", "Paula",
             "Andrés", "Nuria", "Álvaro")
_ES_LAST = ("García", "Martínez", "López", "Sánchez", "Navarro", "Ortega", "Serrano", "Molina",
            "Castillo", "Romero", "Iglesias", "Vidal")
_IT_FIRST = ("Giulia", "Marco", "Francesca", "Luca", "Chiara", "Matteo", "Sara", "Davide",
             "Elisa", "Andrea", "Valentina", "Paolo")
_IT_LAST = ("Rossi", "Bianchi", "Colombo", "Ricci", "Marino", "Greco", "Conti", "Gallo",
            "Costa", "Fontana", "Moretti", "Barbieri")
_EN_FIRST = ("Emma", "James", "Olivia", "Daniel", "Sophie", "Liam", "Grace", "Oliver", "Hannah",
             "Ryan", "Chloe", "Adam", "Megan", "Connor")
_EN_LAST = ("Walsh", "Hughes", "Turner", "Clarke", "Murphy", "Kelly", "Patel", "Wright",
            "Brennan", "Fletcher", "Doyle", "Harrison", "Bennett", "Hayes")

_COUNTRIES: list[tuple[_Country, int]] = [
    (_Country("Germany", ("de",), "EUR", "de", "+49", ("GmbH", "GmbH & Co. KG", "AG"),
              (("Hamburg", "20457"), ("Köln", "50667"), ("Stuttgart", "70173"),
               ("Leipzig", "04109"), ("Bremen", "28195"), ("Nürnberg", "90402")),
              ("Industriestraße", "Hauptstraße", "Am Hafen", "Gewerbering", "Bahnhofstraße"),
              _DE_FIRST, _DE_LAST, "{street} {number}\n{postcode} {city}",
              "buchhaltung", {"de": ("z. Hd.", "Deutschland")}), 24),
    (_Country("Netherlands", ("nl",), "EUR", "nl", "+31", ("B.V.",),
              (("Utrecht", "3511 AB"), ("Eindhoven", "5611 CD"), ("Rotterdam", "3011 EF"),
               ("Groningen", "9711 GH"), ("Zwolle", "8011 JK")),
              ("Industrieweg", "Havenstraat", "Stationsplein", "Marktweg", "Energieweg"),
              _NL_FIRST, _NL_LAST, "{street} {number}\n{postcode} {city}",
              "facturen", {"nl": ("t.a.v.", "Nederland")}), 14),
    (_Country("Belgium", ("nl", "fr"), "EUR", "be", "+32", ("BV", "SRL", "NV"),
              (("Antwerpen", "2000"), ("Gent", "9000"), ("Liège", "4000"), ("Namur", "5000")),
              ("Kouter", "Rue de la Station", "Havenlaan", "Avenue Louise"),
              _NL_FIRST + _FR_FIRST, _NL_LAST + _FR_LAST,
              "{street} {number}\n{postcode} {city}", "invoices",
              {"nl": ("t.a.v.", "België"), "fr": ("À l'attention de", "Belgique")}), 5),
    (_Country("France", ("fr",), "EUR", "fr", "+33", ("SARL", "SAS"),
              (("Lyon", "69002"), ("Lille", "59000"), ("Nantes", "44000"),
               ("Toulouse", "31000"), ("Bordeaux", "33000")),
              ("rue de la République", "avenue Jean Jaurès", "rue du Port", "boulevard Pasteur"),
              _FR_FIRST, _FR_LAST, "{number} {street}\n{postcode} {city}", "compta",
              {"fr": ("À l'attention de", "France")}), 13),
    (_Country("Spain", ("es",), "EUR", "es", "+34", ("S.L.", "S.A."),
              (("Valencia", "46002"), ("Sevilla", "41001"), ("Bilbao", "48001"),
               ("Zaragoza", "50001")),
              ("Calle Mayor", "Avenida de la Constitución", "Calle del Puerto", "Polígono Norte"),
              _ES_FIRST, _ES_LAST, "{street}, {number}\n{postcode} {city}",
              "contabilidad", {"es": ("A la atención de", "España")}), 9),
    (_Country("Italy", ("it",), "EUR", "it", "+39", ("S.r.l.", "S.p.A."),
              (("Torino", "10121"), ("Bologna", "40121"), ("Verona", "37121"), ("Bari", "70121")),
              ("Via Roma", "Via Garibaldi", "Corso Italia", "Via dell'Industria"),
              _IT_FIRST, _IT_LAST, "{street} {number}\n{postcode} {city}",
              "amministrazione", {"it": ("Alla c.a.", "Italia")}), 9),
    (_Country("Ireland", ("en",), "EUR", "ie", "+353", ("Ltd", "DAC"),
              (("Dublin", "D02 X285"), ("Cork", "T12 K8AF"), ("Galway", "H91 E2K3")),
              ("Main Street", "Harbour Road", "Mill Lane", "Station Road"),
              _EN_FIRST, _EN_LAST, "{number} {street}\n{city} {postcode}",
              "accounts", {"en": ("Attn.", "Ireland")}), 7),
    (_Country("United Kingdom", ("en",), "GBP", "co.uk", "+44", ("Ltd", "PLC"),
              (("Leeds", "LS1 4AP"), ("Bristol", "BS1 6QF"), ("Manchester", "M1 2WD"),
               ("Norwich", "NR1 3JU")),
              ("High Street", "Station Road", "Mill Lane", "Victoria Road"),
              _EN_FIRST, _EN_LAST, "{number} {street}\n{city} {postcode}",
              "accounts.payable", {"en": ("Attn.", "United Kingdom")}), 11),
    (_Country("United States", ("en",), "USD", "com", "+1", ("Inc.", "LLC"),
              (("Chicago", "IL 60607"), ("Denver", "CO 80202"), ("Columbus", "OH 43215"),
               ("Portland", "OR 97204")),
              ("Commerce Drive", "Main Street", "Industrial Parkway", "Lake Avenue"),
              _EN_FIRST, _EN_LAST, "{number} {street}\n{city}, {postcode}",
              "ap", {"en": ("Attn.", "United States")}), 8),
]

_STEMS = ("Alder", "Bluebrook", "Redstone", "Oakridge", "Silverline", "Kingfisher", "Greenfield",
          "Harbour", "Summit", "Meridian", "Crescent", "Falcon", "Granite", "Linden", "Maple",
          "Riverside", "Stonebridge", "Westhaven", "Juniper", "Orchard", "Beacon", "Cedar",
          "Hollow Creek", "Ironbark", "Lakeside", "Northfield", "Pinecrest", "Quarry Hill",
          "Saltmarsh", "Thornbury", "Vale", "Willow", "Ashford", "Brightwater", "Copperleaf",
          "Fernhill", "Goldcrest", "Heron", "Kestrel", "Larkspur", "Millbrook", "Oakmont")

# industry: (name endings, what they do, reasons particular to the trade)
_INDUSTRIES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    Industry.MANUFACTURING: (
        ("Precision Parts", "Metalworks", "Plastics", "Engineering", "Components", "Fabrication"),
        ("Machine shop making precision-turned parts for the automotive industry.",
         "Makes stainless-steel kitchen equipment for restaurants and hospitals.",
         "Injection-moulds plastic housings for electronics makers.",
         "Builds custom conveyor systems for food processors.",
         "Produces powder-coated steel shelving for warehouses."),
        ("Raw material certificates with every delivery", "We hold buffer stock for them",
         "Our technical team helps with tolerances"),
    ),
    Industry.WHOLESALE: (
        ("Trading", "Supply", "Distribution", "Wholesale", "Import & Export"),
        ("Wholesaler of fasteners and fixings to hardware stores.",
         "Distributes cleaning and hygiene products to facility managers.",
         "Imports and distributes garden and outdoor products.",
         "Regional distributor of electrical installation material."),
        ("Pallet prices that leave them a margin", "Drop-shipping to their customers",
         "EDI ordering straight from their ERP"),
    ),
    Industry.RETAIL: (
        ("Home & Garden", "Outfitters", "Stores", "Hardware", "Interiors"),
        ("Chain of hardware stores serving trades and DIY customers.",
         "Independent outdoor-clothing retailer with a web shop.",
         "Garden centres with a café and a landscaping service.",
         "Kitchen and interiors showroom with installation service."),
        ("Shelf-ready packaging", "Seasonal stock on consignment", "Marketing material for stores"),
    ),
    Industry.CONSTRUCTION: (
        ("Builders", "Roofing", "Civil Engineering", "Construction", "Installations"),
        ("Builds and renovates schools and other public buildings.",
         "Roofing and façade contractor for commercial buildings.",
         "Groundworks and civil engineering for housing developments.",
         "Installs heating, ventilation and plumbing in new builds."),
        ("Deliveries straight to the building site", "Call-off orders against one framework deal",
         "Materials approved by their structural engineers"),
    ),
    Industry.HOSPITALITY: (
        ("Hotels", "Catering", "Bistro Group", "Hospitality", "Events Catering"),
        ("Runs four city hotels with conference rooms.",
         "Contract caterer for offices and schools.",
         "Group of bistros and a central kitchen.",
         "Event caterer for weddings and trade fairs."),
        ("Deliveries before the breakfast service", "Small minimum order quantities",
         "Linen and consumables from one supplier"),
    ),
    Industry.HEALTHCARE: (
        ("Medical Centre", "Care Homes", "Dental Practice", "Clinic", "Pharmacy Group"),
        ("Operates six residential care homes.",
         "Group dental practice with three locations.",
         "Private outpatient clinic for orthopaedics.",
         "Regional pharmacy group with its own compounding lab."),
        ("Certified medical-grade products", "Batch traceability on every item",
         "Emergency deliveries at weekends"),
    ),
    Industry.LOGISTICS: (
        ("Freight", "Haulage", "Logistics", "Transport", "Cold Chain"),
        ("Road haulage company with 60 trucks across the region.",
         "Temperature-controlled warehousing and distribution.",
         "Courier and same-day delivery service for businesses.",
         "Freight forwarder specialising in sea containers."),
        ("Spare parts for their fleet within 24 hours", "Service contracts for their depots",
         "Fuel-card and tyre deals bundled in"),
    ),
    Industry.PROFESSIONAL: (
        ("Consulting", "Accountants", "Legal", "Architects", "Advisory"),
        ("Accountancy firm serving small and medium businesses.",
         "Architecture practice focused on timber buildings.",
         "Management consultants for the public sector.",
         "Law firm specialising in employment law."),
        ("Office supplies delivered to every branch", "One consolidated monthly invoice",
         "Sustainably sourced products"),
    ),
    Industry.TECHNOLOGY: (
        ("Software", "Systems", "Data", "Networks", "Digital"),
        ("Builds warehouse-management software and sells the hardware with it.",
         "Managed IT services for medical practices.",
         "Installs and maintains fibre networks for business parks.",
         "Data-centre operator with two sites."),
        ("Hardware pre-configured before shipping", "Advance replacement of faulty units",
         "Volume licences bundled with hardware"),
    ),
    Industry.PUBLIC: (
        ("Facilities", "Water Board", "School Board", "Housing Association", "Transport Authority"),
        # In step with the endings above: the name says which kind of body it is.
        ("Municipal facilities department running schools, pools and offices.",
         "Regional water authority maintaining pumping stations.",
         "Runs the public schools of the district.",
         "Housing association with 4,000 rented homes.",
         "Public transport operator for the city region."),
        ("We won their public tender", "Framework agreement with fixed prices",
         "E-invoices that their procurement system accepts"),
    ),
    Industry.AGRICULTURE: (
        ("Farms", "Dairy Cooperative", "Orchards", "Growers", "Food Processing"),
        ("Dairy cooperative collecting milk from 120 farms.",
         "Fruit grower and packer supplying supermarkets.",
         "Greenhouse vegetable grower with its own packing line.",
         "Bakery ingredients processor and mill."),
        ("Food-grade certification on all products", "Harvest-season delivery slots",
         "Payment terms that follow the harvest"),
    ),
    Industry.OTHER: (
        ("Printing", "Cleaning Services", "Events", "Security", "Media"),
        ("Commercial printer for packaging and labels.",
         "Office and industrial cleaning company with 200 staff.",
         "Trade-fair stand builder and event organiser.",
         "Security services for retail parks."),
        ("Consumables in every site's own delivery", "Account manager who visits every quarter",
         "Price agreements renewed once a year"),
    ),
}

_GENERAL_REASONS = (
    "Next-day delivery from our regional warehouse",
    "Consistent quality; almost no returns",
    "Competitive prices on volume orders",
    "A dedicated account manager who knows their business",
    "Reliable stock availability, even in peak season",
    "Good technical advice before they buy",
    "We take back packaging and pallets",
    "Certified supplier (ISO 9001) for their own audits",
    "Short lead times on custom orders",
    "Invoices that match their purchase orders line by line",
    "Long-standing personal relationship with their management",
    "Flexible delivery windows",
)

# text, typical interval in days, pattern, first, second
_RHYTHMS = {
    "month_start": ("Orders at the start of every month", 30, "monthly", 1, 4),
    "mid_month": ("Orders mid-month, after their stock count", 30, "monthly", 13, 17),
    "month_end": ("Orders at the end of each month", 30, "monthly", 25, 28),
    "weekly": ("Standing weekly order, delivered on Mondays", 7, "weekly", 7, 0),
    "fortnightly": ("Orders every other Thursday", 14, "weekly", 14, 3),
    "six_weeks": ("Orders roughly every six weeks, when stock runs low", 42, "interval", 42, 0),
    "quarterly": ("Orders quarterly, ahead of each season", 91, "interval", 91, 0),
    # Offset 60 and little jitter: never more than three orders in the 548 days.
    "half_yearly": ("Orders twice a year (spring and autumn)", 182, "interval", 182, 60),
}
_RHYTHM_WEIGHTS = {
    "month_start": 22, "mid_month": 15, "month_end": 15, "weekly": 6, "fortnightly": 14,
    "six_weeks": 14, "quarterly": 9,
}

_AP_RUN_DAYS = ([15, 30], [1, 15], [10, 25], [20], [5, 20], [28])

_SPECIAL_BONDS = (
    "Pays us first because we carried them through the 2024 flood with 90-day terms.",
    "We rebuilt their stock at cost after their 2023 warehouse fire; the owner has not forgotten.",
    "Their founder was our very first customer and still vouches for us with other accounts.",
    "They pre-paid orders in spring 2020 to keep us going; we return the favour.",
    "Our CEO and their owner co-founded the regional trade association.",
    "We kept delivering during their 2022 restructuring; they pay us before anyone else.",
    "Family business we have served for three generations.",
    "Their owner sits on our customer advisory board.",
)

_NOTES = (
    "Every invoice must quote their PO number; invoices without one are rejected by their AP.",
    "Invoices go to the head office, not to the branches.",
    "Year-end closing in December: no payments between 20 December and 5 January.",
    "Prefers a phone call to a reminder letter.",
    "Their AP team changed in spring; double-check the billing contact.",
    "Disputes are usually about freight charges; check the delivery terms first.",
    "Owner likes a visit from sales once a quarter.",
    "Uses a factoring company for their own receivables; pays on the run days only.",
)

_CREDIT_REASONS = (
    "Damaged in transit; goods returned",
    "Price correction: contract price not applied",
    "Short delivery: two cartons missing",
    "Volume rebate for the quarter",
    "Duplicate freight charge",
)

_BEST_TIMES = ("Tue–Thu mornings", "After 2 pm", "Mon–Fri 9–11", "Not on Fridays",
               "Mornings before 10", "Wednesday afternoons", "", "", "")

_CONTACT_NOTES = ("Works part-time, Monday to Wednesday.", "Prefers to be addressed formally.",
                  "Copy the shared AP mailbox on every e-mail.", "Answers e-mail within a day.")

_ARCHETYPE_SHARES = [  # percent of customers
    (PROMPT, 35),
    (OCCASIONAL_SLIP, 20),
    (SYSTEMATIC_LATE, 17),
    (NEW, 15),
    (DISTRESSED, 9),
    (SPECIAL_BOND, 4),
]

_CENTS_TO_DECIMAL = Decimal("0.01")


def _money(cents: int) -> Decimal:
    return (Decimal(cents) * _CENTS_TO_DECIMAL).quantize(_CENTS_TO_DECIMAL)


def _ascii(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def _day(days: int) -> dt.timedelta:
    return dt.timedelta(days=days)


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


def _archetype_mix(n: int) -> list[str]:
    """How many customers of each archetype: the shares, with at least three of
    each (fewer for tiny counts) so every segment shows up in a small demo."""
    floor = min(3, n // len(_ARCHETYPE_SHARES))
    counts = {kind: max(n * share // 100, floor) for kind, share in _ARCHETYPE_SHARES}
    counts[PROMPT] += n - sum(counts.values())
    return [kind for kind, count in counts.items() for _ in range(count)]


# --- Planning -------------------------------------------------------------------------------


@dataclass
class _Bill:
    """An invoice being planned, with amounts in cents."""

    invoice: Invoice
    cents: int
    planned: dt.date | None = None  # the day it is paid in full; None: still open today
    credit_cents: int = 0
    split: tuple[dt.date, int] | None = None  # (day, cents) of a first part payment
    parts: list[tuple[dt.date, int]] = field(default_factory=list)  # (day, cents) paid or credited


@dataclass
class _Receipt:
    """One payment and what it pays: [(bill, cents)]."""

    received_on: dt.date
    kind: str  # single, run, part, on_account, cod, prepayment
    lines: list[tuple[_Bill, int]] = field(default_factory=list)
    payment: Payment | None = None


@dataclass
class _Account:
    customer: Customer
    archetype: str
    country: _Country
    city: str
    rhythm: str
    order_cents: int
    method: str
    batches: bool
    requires_po: bool = False
    trouble: dt.date | None = None  # distressed: the first due date it could not pay
    referrer: Customer | None = None  # set on the customer once both are saved
    contacts: list[Contact] = field(default_factory=list)
    bills: list[_Bill] = field(default_factory=list)
    receipts: list[_Receipt] = field(default_factory=list)
    credits: list[tuple[CreditNote, _Bill]] = field(default_factory=list)


class _Builder:
    def __init__(self, rng: random.Random, *, today: dt.date, users: dict[str, User]):
        self.rng = rng
        self.today = today
        self.start = today - _day(HISTORY_DAYS)
        # Documents dated from here on are written by the replay, on their day.
        self.replay_from = today - _day(RECENT_DAYS)
        self.users = users
        self.accounts: list[_Account] = []
        self.absences: list[ContactAbsence] = []
        self.events: list[TimelineEvent] = []
        self.credit_numbers: Counter[int] = Counter()  # last credit-note number per year
        self._names: set[str] = set()
        self._absence_plan: list[tuple[_Account, str]] = []

    # The order of the rng calls below is part of the output: keep it fixed.
    def plan(self, n: int) -> None:
        rng = self.rng
        archetypes = _archetype_mix(n)
        rng.shuffle(archetypes)
        for index, archetype in enumerate(archetypes):
            self.accounts.append(self._account(index, archetype))
        # Older customers get the lower account numbers, as in any ERP.
        self.accounts.sort(key=lambda a: (a.customer.customer_since, a.customer.name))
        for number, account in enumerate(self.accounts, start=10001):
            account.customer.account_number = f"C{number}"
        self._referrals()
        for account in self.accounts:
            self._contacts(account)
            self._invoices(account)
            self._history(account)
        self._extras()
        self._number_documents()
        self._settle()

    def _account(self, index: int, archetype: str) -> _Account:
        rng, today = self.rng, self.today
        country = rng.choices([c for c, _ in _COUNTRIES], [w for _, w in _COUNTRIES])[0]
        # Bonds are personal, and a public body has no owner to have one with.
        industries = [i for i in Industry if archetype != SPECIAL_BOND or i != Industry.PUBLIC]
        industry = rng.choice(industries)
        endings, what, trade_reasons = _INDUSTRIES[industry]
        name, city, ending = self._company_name(rng, country, industry, endings)
        if industry == Industry.PUBLIC:
            what = (what[endings.index(ending)],)

        if archetype == NEW:
            occasional = rng.random() < 0.3
            since = today - _day(rng.randint(600, 3000) if occasional else rng.randint(15, 150))
        elif archetype == SPECIAL_BOND:
            occasional, since = False, today - _day(rng.randint(4 * 365, 25 * 365))
        else:
            occasional, since = False, today - _day(rng.randint(400, 20 * 365))

        if occasional:
            rhythm = "half_yearly"
        else:
            weights = dict(_RHYTHM_WEIGHTS)
            if (today - since).days < 600:
                weights.pop("quarterly")  # too few settled invoices to judge otherwise
            if archetype == DISTRESSED:  # needs an order in the weeks before it stopped paying
                for slow in ("six_weeks", "quarterly"):
                    weights.pop(slow, None)
            rhythm = rng.choices(list(weights), list(weights.values()))[0]
        interval = _RHYTHMS[rhythm][1]

        # Monthly spend tiers; one order is the spend over the ordering interval.
        monthly = rng.choices([800, 1_500, 3_000, 6_000, 12_000, 25_000, 50_000],
                              [10, 18, 24, 20, 14, 9, 5])[0]
        order_cents = monthly * 100 * interval // 30

        terms_type, terms = TermsType.STANDARD, rng.choices([30, 45, 60, 14], [55, 20, 17, 8])[0]
        if archetype in (PROMPT, NEW) and not occasional and rng.random() < 0.12:
            terms_type, terms = rng.choice([TermsType.COD, TermsType.PREPAYMENT]), 0
        if terms_type == TermsType.STANDARD:
            credit = max(monthly * (terms // 30 + 1) * 2, 1_000)
            credit = credit // 1_000 * 1_000 if credit < 20_000 else credit // 5_000 * 5_000
        else:
            credit = 0

        if terms_type == TermsType.COD:
            method = rng.choice([PaymentMethod.CARD, PaymentMethod.CASH])
        elif terms_type == TermsType.PREPAYMENT:
            method = PaymentMethod.BANK_TRANSFER
        else:
            method = rng.choices(
                [PaymentMethod.BANK_TRANSFER, PaymentMethod.DIRECT_DEBIT, PaymentMethod.CHEQUE],
                [80, 12 if archetype == PROMPT else 0, 8],
            )[0]
        # Frequent orderers who pay on time settle them in AP payment runs, so one
        # payment covers several invoices.
        on_time_payer = archetype in (PROMPT, OCCASIONAL_SLIP, NEW, SPECIAL_BOND)
        run_days: list[int] = []
        if (
            terms_type == TermsType.STANDARD
            and method == PaymentMethod.BANK_TRANSFER
            and ((on_time_payer and interval <= 14) or rng.random() < 0.45)
        ):
            run_days = list(rng.choice(_AP_RUN_DAYS))
        batches = on_time_payer and bool(run_days)

        reasons = rng.sample(list(trade_reasons), 2) + rng.sample(
            list(_GENERAL_REASONS), rng.randint(1, 3)
        )
        rng.shuffle(reasons)
        notes = [rng.choice(_NOTES)] if rng.random() < 0.35 else []
        requires_po = bool(notes) and notes[0].startswith("Every invoice must quote")
        special_bond = rng.choice(_SPECIAL_BONDS) if archetype == SPECIAL_BOND else ""
        on_hold = archetype == DISTRESSED and rng.random() < 0.67
        if archetype == DISTRESSED:
            notes.append("Orders have dried up and payments stopped; owner not returning calls."
                         if not on_hold else
                         "On credit hold until the overdue balance is cleared or a plan agreed.")
        staff = rng.choice([12, 25, 40, 60, 90, 150, 300])
        sales = self.users["manager"] if monthly >= 25_000 else self.users["sam"]

        customer = Customer(
            name=name,
            legal_name=f"{name} {rng.choice(country.legal_forms)}"
            if industry != Industry.PUBLIC else name,
            industry=industry,
            business_description=f"{rng.choice(what)} About {staff} staff, based in {city}.",
            buying_reasons=reasons,
            customer_since=since,
            collector=self.users[COLLECTORS[index % len(COLLECTORS)]],
            relationship_owner=sales,
            special_bond=special_bond,
            currency=country.currency,
            credit_limit_amount=Decimal(credit),
            terms_type=terms_type,
            payment_terms_days=terms,
            on_credit_hold=on_hold,
            ap_run_days=run_days,
            ordering_rhythm=_RHYTHMS[rhythm][0],
            # Accounts that order when stock runs low or twice a year have no
            # number on their card: the order-gap alerts learn theirs from the
            # orders (and say when there are too few to learn from).
            typical_order_interval_days=None if _RHYTHMS[rhythm][2] == "interval" else interval,
            notes="\n".join(notes),
        )
        customer.clean()
        return _Account(customer, archetype, country, city, rhythm, order_cents, method,
                        batches, requires_po=requires_po)

    def _company_name(
        self, rng: random.Random, country: _Country, industry: str, endings: tuple[str, ...]
    ) -> tuple[str, str, str]:
        """A company name not used yet, the city it is based in, and its ending."""
        for attempt in range(60):
            city = rng.choice(country.cities)[0]
            ending = rng.choice(endings)
            if industry == Industry.PUBLIC:  # named after the place it serves
                area = rng.choice(["North", "South", "East", "West"]) if attempt >= 20 else ""
                name = f"{area} {city} {ending}".strip()
            else:
                maker = rng.choice(country.last_names if rng.random() < 0.45 else _STEMS)
                name = f"{maker} {ending}" if attempt < 20 else f"{maker} {ending} {city}"
            if attempt >= 40:
                name = f"{name} {attempt}"
            if name not in self._names:
                self._names.add(name)
                return name, city, ending
        raise RuntimeError("ran out of company names")  # 60 tries always find one

    def _referrals(self) -> None:
        """About one in eight customers came through another, older one; a few
        ambassadors bring several."""
        rng = self.rng
        ambassadors = [a for a in self.accounts if a.archetype in (PROMPT, SPECIAL_BOND)]
        ambassadors = ambassadors[: max(1, len(ambassadors) // 4)]  # the oldest ones
        for account in self.accounts:
            customer = account.customer
            if rng.random() >= 0.12:
                continue
            older = [a.customer for a in ambassadors
                     if a.customer.customer_since <= customer.customer_since - _day(60)]
            if older:
                account.referrer = rng.choice(older)
                note = f"Came to us through {account.referrer.name}."
                customer.notes = f"{customer.notes}\n{note}".strip()

    def _contacts(self, account: _Account) -> None:
        rng, country = self.rng, account.country
        customer = account.customer
        count = rng.choices([1, 2, 3, 4], [15, 35, 35, 15])[0]
        if account is self.accounts[0]:
            count = max(count, 2)  # someone must be able to stand in for an absence
        roles = [ContactRole.AP]
        if count >= 2:
            roles.append(ContactRole.PRINCIPAL if rng.random() < 0.8 else ContactRole.PURCHASING)
        if count >= 3:
            roles.append(
                ContactRole.PURCHASING if roles[1] == ContactRole.PRINCIPAL else ContactRole.OTHER
            )
        if count >= 4:
            roles.append(ContactRole.OTHER)
        domain = f"{_ascii(customer.name.split()[0])}-{_ascii(customer.name.split()[-1])}"
        domain = f"{domain}.{country.tld}"
        city = account.city
        postcode = next(code for name, code in country.cities if name == city)
        address = country.address.format(
            number=rng.randint(1, 180), street=rng.choice(country.streets),
            postcode=postcode, city=city,
        )
        people = rng.sample(
            [(f, last) for f in country.first_names for last in country.last_names], count
        )
        for role, (first, last) in zip(roles, people, strict=True):
            language = rng.choice(country.languages)
            if language != Language.EN and rng.random() < 0.15:
                language = Language.EN  # speaks English with us
            email = f"{_ascii(first)}.{_ascii(last)}@{domain}"
            phone = (f"{country.phone_prefix} {rng.randint(20, 99)} "
                     f"{rng.randint(100, 999)} {rng.randint(1000, 9999)}")
            postal = ""
            delivery, reminder = InvoiceDelivery.PDF_EMAIL, ReminderChannel.EMAIL
            title = {
                ContactRole.PRINCIPAL: rng.choice(
                    ["Director", "Head of Finance"] if customer.industry == Industry.PUBLIC
                    else ["Owner", "Managing Director", "CEO", "Founder"]
                ),
                ContactRole.PURCHASING: rng.choice(["Purchasing Manager", "Buyer",
                                                    "Procurement Lead"]),
                ContactRole.OTHER: rng.choice(["Financial Controller", "Office Manager"]),
            }.get(role, "")
            if role == ContactRole.AP:
                title = rng.choice(["Accounts Payable Clerk", "Bookkeeper", "AP Specialist",
                                    "Finance Assistant"])
                if rng.random() < 0.3:
                    email = f"{country.ap_mailbox}@{domain}"  # the shared AP mailbox
                if customer.industry == Industry.PUBLIC:
                    delivery = InvoiceDelivery.E_INVOICE
                else:
                    delivery = rng.choices(list(InvoiceDelivery), [30, 55, 15])[0]
                reminder = rng.choices(list(ReminderChannel), [70, 18, 12])[0]
                if rng.random() < 0.05:  # the old-fashioned office: no e-mail at all
                    email, delivery = "", InvoiceDelivery.PAPER
                    reminder = rng.choice([ReminderChannel.PHONE, ReminderChannel.LETTER])
            elif role == ContactRole.PRINCIPAL:
                reminder = rng.choice([ReminderChannel.PHONE, ReminderChannel.EMAIL])
            if (
                delivery == InvoiceDelivery.PAPER
                or reminder == ReminderChannel.LETTER
                or rng.random() < 0.2
            ):
                words = country.postal_words
                attention, land = words.get(language) or words[country.languages[0]]
                postal = (f"{customer.legal_name or customer.name}\n{attention} {first} {last}\n"
                          f"{address}\n{land}")
            contact = Contact(
                customer=customer,
                name=f"{first} {last}",
                job_title=title,
                role=role,
                email=email,
                phone=phone,
                postal_address=postal,
                language=language,
                invoice_delivery=delivery,
                reminder_channel=reminder,
                best_time_to_call=rng.choice(_BEST_TIMES),
                is_primary_billing=role == ContactRole.AP,
                notes=rng.choice(_CONTACT_NOTES) if rng.random() < 0.1 else "",
            )
            contact.clean()
            account.contacts.append(contact)

    def _invoices(self, account: _Account) -> None:
        rng, customer = self.rng, account.customer
        _, interval, pattern, first, second = _RHYTHMS[account.rhythm]
        start = max(customer.customer_since, self.start)
        end = self.today
        if account.archetype == DISTRESSED:
            account.trouble = self.today - _day(rng.randint(100, 190))
            end = account.trouble + _day(10)  # orders stopped soon after
        dates: list[dt.date] = []
        if pattern == "monthly":
            year, month = start.year, start.month
            while (year, month) <= (end.year, end.month):
                day = min(rng.randint(first, second), calendar.monthrange(year, month)[1])
                issued = dt.date(year, month, day)
                if start <= issued <= end and rng.random() > 0.04:
                    dates.append(issued)
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        elif pattern == "weekly":
            issued = start + _day((second - start.weekday()) % 7)
            while issued <= end:
                if rng.random() > 0.05:  # holidays
                    dates.append(issued)
                issued += _day(first)
        else:
            jitter = interval // 12
            issued = start + _day(second + rng.randint(0, interval // 2))
            while issued <= end:
                dates.append(issued)
                issued += _day(interval + rng.randint(-jitter, jitter))
        for issued in dates:
            cents = rng.randint(account.order_cents * 7 // 10, account.order_cents * 13 // 10)
            invoice = Invoice(
                customer=customer,
                issue_date=issued,
                due_date=issued + _day(customer.payment_terms_days),
                currency=customer.currency,
                total_amount=_money(cents),
                po_reference=f"PO-{rng.randint(100000, 999999)}" if account.requires_po else "",
            )
            account.bills.append(_Bill(invoice, cents))

    # -- Payment history by archetype --

    def _on_time(self, account: _Account, invoice: Invoice) -> dt.date:
        """A payment day on or before the due date; an AP run day when the
        customer pays in runs."""
        terms = account.customer.payment_terms_days
        if terms == 0:  # C.O.D. or prepayment: paid on delivery
            return invoice.issue_date
        paid = invoice.due_date - _day(self.rng.randint(0, min(8, terms // 4)))
        if account.batches:
            run_days = account.customer.ap_run_days
            for back in range(15):
                day = paid - _day(back)
                if day < invoice.issue_date:
                    break
                last = calendar.monthrange(day.year, day.month)[1]
                if day.day in run_days or (day.day == last and max(run_days) > last):
                    return day
        return max(paid, invoice.issue_date)

    def _history(self, account: _Account) -> None:
        """Plan the day each invoice is paid in full, or None if it is open today."""
        rng, today = self.rng, self.today
        invoices = [bill.invoice for bill in account.bills]
        kind = account.archetype
        if kind == SPECIAL_BOND:
            kind = PROMPT if rng.random() < 0.6 else "bond_late"
        paid: list[dt.date | None] = []
        if kind in (PROMPT, OCCASIONAL_SLIP):
            paid = [self._on_time(account, i) for i in invoices]
        if kind == OCCASIONAL_SLIP:
            # The misplaced invoice: within the year, and long enough ago to be settled.
            candidates = [n for n, i in enumerate(invoices)
                          if today - _day(365) <= i.due_date <= today - _day(16)]
            # Two misses only among ten or more, or "most invoices late" comes close.
            misses = 2 if len(candidates) >= 10 else 1
            for n in rng.sample(candidates, min(misses, len(candidates))):
                paid[n] = invoices[n].due_date + _day(rng.randint(5, 15))
            recent = [n for n, i in enumerate(invoices)
                      if today - _day(12) <= i.due_date <= today - _day(3)]
            if recent and rng.random() < 0.5:
                paid[recent[-1]] = None  # a few days overdue right now
        elif kind == SYSTEMATIC_LATE:
            usual = rng.randint(15, 24)
            on_time = set(rng.sample(range(len(invoices)), len(invoices) // 6))
            for n, invoice in enumerate(invoices):
                if n in on_time:
                    paid.append(invoice.due_date)
                elif invoice.due_date < today - _day(405):
                    # Settled before the 365-day window: the old habit was worse.
                    paid.append(invoice.due_date + _day(usual + rng.randint(-4, 16)))
                else:
                    # At most 29 days late: always this late is systematic, not
                    # deteriorating (distress starts at 30 days over the last 90).
                    paid.append(invoice.due_date + _day(usual + rng.randint(-4, 5)))
        elif kind == "bond_late":
            paid = [i.due_date + _day(rng.randint(3, 20)) for i in invoices]
        elif kind == NEW:
            paid = [self._on_time(account, i) if rng.random() < 0.75
                    else i.due_date + _day(rng.randint(1, 6)) for i in invoices]
        elif kind == DISTRESSED:
            for invoice in invoices:
                if invoice.due_date >= account.trouble:
                    paid.append(None)
                elif invoice.due_date >= account.trouble - _day(90):
                    paid.append(invoice.due_date + _day(rng.randint(25, 55)))  # slipping
                else:
                    paid.append(invoice.due_date + _day(rng.randint(-2, 4)))
            if invoices and all(paid):
                paid[-1] = None
        for bill, day in zip(account.bills, paid, strict=True):
            bill.planned = day if day is not None and day <= today else None

    def _extras(self) -> None:
        """Credit notes, split payments, payments on account and absences, on a
        chosen few accounts (at least one of each)."""
        rng, today = self.rng, self.today
        standard = [a for a in self.accounts
                    if a.customer.terms_type == TermsType.STANDARD and a.bills]

        # Credit notes, allocated to the invoice they correct before it is paid.
        for account in rng.sample(standard, min(len(standard), max(2, len(self.accounts) // 10))):
            for bill in rng.sample(account.bills, min(2, len(account.bills))):
                invoice = bill.invoice
                issued = invoice.issue_date + _day(rng.randint(2, 12))
                issued = min(issued, bill.planned or today, today)
                bill.credit_cents = bill.cents * rng.randint(5, 25) // 100
                note = CreditNote(customer=account.customer, invoice=invoice, issued_on=issued,
                                  currency=invoice.currency, amount=_money(bill.credit_cents),
                                  reason=rng.choice(_CREDIT_REASONS))
                account.credits.append((note, bill))

        # One invoice settled by two payments: a part first, the rest on the planned day.
        splittable = [a for a in standard if a.archetype != DISTRESSED]
        for account in rng.sample(splittable,
                                  min(len(splittable), max(1, len(self.accounts) // 12))):
            settled = [b for b in account.bills
                       if b.planned and (b.planned - b.invoice.issue_date).days >= 10
                       and not b.credit_cents]
            if settled:
                bill = rng.choice(settled)
                first = max(bill.planned - _day(rng.randint(5, 15)), bill.invoice.issue_date)
                bill.split = (first, bill.cents * rng.randint(40, 60) // 100)

        # Distressed customers pay something on account of their oldest open invoice.
        for account in self.accounts:
            open_ = [b for b in account.bills if b.planned is None]
            if account.archetype == DISTRESSED and open_ and rng.random() < 0.5:
                oldest = open_[0]
                day = max(today - _day(rng.randint(10, 60)), oldest.invoice.issue_date)
                part = oldest.cents * rng.randint(20, 50) // 100
                account.receipts.append(_Receipt(day, "on_account", [(oldest, part)]))

        # Absences: the billing contact away today with a stand-in, another
        # contact away today without one, and some past and future ones.
        many = [a for a in self.accounts if len(a.contacts) >= 2]
        chosen = rng.sample(many, min(len(many), max(4, len(self.accounts) // 30)))
        for n, account in enumerate(chosen):
            self._absence_plan.append((account, ["today", "today_alone"][n] if n < 2 else "other"))

    def _absence(self, account: _Account, kind: str) -> ContactAbsence:
        rng, today = self.rng, self.today
        away, *others = account.contacts  # the primary billing contact comes first
        if kind == "today":
            delegate = others[0]
            starts, ends = today - _day(rng.randint(2, 7)), today + _day(rng.randint(5, 12))
            note = f"On vacation; send invoices and reminders to {delegate.name} instead."
        elif kind == "today_alone":
            away, delegate = others[0], None
            starts, ends = today - _day(rng.randint(1, 4)), today + _day(rng.randint(2, 6))
            note = "Away at a trade fair; back next week."
        else:
            delegate = others[0] if rng.random() < 0.7 else None
            starts = today + _day(rng.choice([-120, -60, -30, 20, 45, 90]))
            ends = starts + _day(rng.choice([4, 9, 14, 20]))
            reason = rng.choice(["On vacation", "Parental leave", "Sick leave", "Training course"])
            note = f"{reason}; send to {delegate.name} instead." if delegate else reason
        return ContactAbsence(contact=away, starts_on=starts, ends_on=ends,
                              delegate=delegate, note=note)

    def _number_documents(self) -> None:
        """Invoice and credit-note numbers rise with the date across all customers."""
        rows = sorted(
            ((b.invoice.issue_date, a.customer.account_number, n, b.invoice)
             for a in self.accounts for n, b in enumerate(a.bills)),
            key=lambda row: row[:3],
        )
        per_year: Counter[int] = Counter()
        for issued, _, _, invoice in rows:
            per_year[issued.year] += 1
            invoice.number = f"INV-{issued.year}-{per_year[issued.year]:06d}"
        notes = sorted(
            ((note.issued_on, a.customer.account_number, n, note)
             for a in self.accounts for n, (note, _) in enumerate(a.credits)),
            key=lambda row: row[:3],
        )
        for issued, _, _, note in notes:
            self.credit_numbers[issued.year] += 1
            note.number = f"CN-{issued.year}-{self.credit_numbers[issued.year]:05d}"

    def _settle(self) -> None:
        """Turn the planned days into payments, then derive each invoice's open
        amount, status and settlement day from what was allocated to it."""
        for account in self.accounts:
            kind = {TermsType.COD: "cod", TermsType.PREPAYMENT: "prepayment"}.get(
                account.customer.terms_type, "single"
            )
            runs: dict[dt.date, _Receipt] = {}
            for bill in account.bills:
                if bill.planned is None:
                    continue
                rest = bill.cents - bill.credit_cents
                if bill.split:
                    first, part = bill.split
                    account.receipts.append(_Receipt(first, "part", [(bill, part)]))
                    account.receipts.append(_Receipt(bill.planned, "part", [(bill, rest - part)]))
                elif account.batches and bill.planned <= bill.invoice.due_date:
                    if bill.planned not in runs:
                        runs[bill.planned] = _Receipt(bill.planned, "run")
                        account.receipts.append(runs[bill.planned])
                    runs[bill.planned].lines.append((bill, rest))
                else:
                    account.receipts.append(_Receipt(bill.planned, kind, [(bill, rest)]))
            account.receipts.sort(key=lambda r: r.received_on)

            allocated: dict[int, list[tuple[dt.date, int]]] = {}
            for receipt in account.receipts:
                for bill, cents in receipt.lines:
                    allocated.setdefault(id(bill), []).append((receipt.received_on, cents))
            for note, bill in account.credits:
                allocated.setdefault(id(bill), []).append((note.issued_on, bill.credit_cents))
            for bill in account.bills:
                bill.parts = sorted(allocated.get(id(bill), []), key=lambda part: part[0])
                if bill.cents - sum(cents for _, cents in bill.parts) < 0:
                    raise RuntimeError(f"planned to overpay {bill.invoice.number}")
                _balance_set(bill, until=None)

    # --- Saving ---------------------------------------------------------------------------

    def save(self) -> None:
        """Write the accounts and what they hold before the replayed weeks;
        the documents of each replayed day are written on that day
        (`documents_write`)."""
        Customer.objects.bulk_create([a.customer for a in self.accounts], batch_size=BATCH_SIZE)
        referred = [a for a in self.accounts if a.referrer]
        for account in referred:
            account.customer.referred_by = account.referrer
        Customer.objects.bulk_update(
            [a.customer for a in referred], ["referred_by"], batch_size=BATCH_SIZE
        )

        Contact.objects.bulk_create(
            [c for a in self.accounts for c in a.contacts], batch_size=BATCH_SIZE
        )
        for account, kind in self._absence_plan:
            absence = self._absence(account, kind)
            absence.clean()  # needs the contacts' customer ids, so after they are saved
            self.absences.append(absence)
        ContactAbsence.objects.bulk_create(self.absences, batch_size=BATCH_SIZE)

        # Credit notes issued later must not reuse a number handed out here.
        DocumentCounter.objects.bulk_create(
            [DocumentCounter(prefix=f"CN-{year}-", next_value=last + 1)
             for year, last in sorted(self.credit_numbers.items())]
        )
        events = []
        for account in self.accounts:
            customer = account.customer
            events.append((account_opened(customer, at=_at(customer.customer_since, 7, 30)), []))
            if customer.on_credit_hold:
                events.append((self._hold_event(account), []))
        self._documents_write(since=None, until=self.replay_from, events=events)

    def paid_on(self, day: dt.date) -> list[int]:
        """The accounts with money received or credited on `day`."""
        return [a.customer.pk for a in self.accounts
                if any(r.received_on == day for r in a.receipts)
                or any(note.issued_on == day for note, _ in a.credits)]

    def open_today(self) -> set[int]:
        """The invoices written so far that are still open on the demo's last day."""
        return {b.invoice.pk for a in self.accounts for b in a.bills if b.planned is None and b.invoice.pk}

    def changed_on(self, day: dt.date) -> list[int]:
        """The accounts with money received or credited, or invoiced, on `day`."""
        invoiced = {a.customer.pk for a in self.accounts if any(b.invoice.issue_date == day for b in a.bills)}
        return sorted(invoiced.union(self.paid_on(day)))

    def documents_write(self, *, on: dt.date) -> None:
        """The invoices, credit notes and payments dated `on`, and what they
        leave open, written on that day of the replay: a notice of an earlier
        night asks for what was owed that night, not for what was left after
        money that came later."""
        self._documents_write(since=on, until=on + _day(1), events=[])

    def _documents_write(self, *, since: dt.date | None, until: dt.date,
                         events: list[tuple[TimelineEvent, list[_Bill]]]) -> None:
        """Write the documents dated from `since` (from the start: None) to
        before `until`, the balances of the invoices they touch as they stand
        then, and their timeline events (after `events`, the account's own):
        the account opening first thing in the morning, invoices at 8, credit
        notes at 9:30, payments at 11."""

        def dated(day: dt.date) -> bool:
            return (since is None or since <= day) and day < until

        issued = [b for a in self.accounts for b in a.bills if dated(b.invoice.issue_date)]
        credits = [(a, note, bill) for a in self.accounts for note, bill in a.credits
                   if dated(note.issued_on)]
        receipts = [(a, r) for a in self.accounts for r in a.receipts if dated(r.received_on)]
        new = {id(b) for b in issued}
        paid = {id(b): b for _, r in receipts for b, _ in r.lines} | {id(b): b for _, _, b in credits}
        for bill in [*issued, *paid.values()]:
            _balance_set(bill, until=until)
        Invoice.objects.bulk_create([b.invoice for b in issued], batch_size=BATCH_SIZE)
        Invoice.objects.bulk_update([b.invoice for k, b in paid.items() if k not in new],
                                    ["open_amount", "status", "settled_on"], batch_size=BATCH_SIZE)
        CreditNote.objects.bulk_create([note for _, note, _ in credits], batch_size=BATCH_SIZE)
        for account, receipt in receipts:
            receipt.payment = Payment(
                customer=account.customer,
                received_on=receipt.received_on,
                currency=account.customer.currency,
                amount=_money(sum(cents for _, cents in receipt.lines)),
                method=account.method,
                reference=_reference(receipt),
            )
        Payment.objects.bulk_create([r.payment for _, r in receipts], batch_size=BATCH_SIZE)
        Allocation.objects.bulk_create([
            Allocation(invoice=bill.invoice, payment=receipt.payment, amount=_money(cents),
                       allocated_on=receipt.received_on, applied_on=receipt.received_on)
            for _, receipt in receipts for bill, cents in receipt.lines
        ] + [
            Allocation(invoice=bill.invoice, credit_note=note, amount=_money(bill.credit_cents),
                       allocated_on=note.issued_on, applied_on=note.issued_on)
            for _, note, bill in credits
        ], batch_size=BATCH_SIZE)

        types = ContentType.objects.get_for_models(Invoice, Payment, CreditNote)
        for bill in issued:
            events.append((invoice_issued(bill.invoice, at=_at(bill.invoice.issue_date, 8)), [bill]))
        for bill in [*issued, *(b for k, b in paid.items() if k not in new)]:
            invoice = bill.invoice
            if invoice.status == InvoiceStatus.PAID and dated(invoice.settled_on):
                events.append((TimelineEvent(
                    customer=invoice.customer, kind=EventKind.INVOICE_PAID,
                    occurred_at=_at(invoice.settled_on, 11, 5), **invoice_paid_said(invoice),
                    subject_type=types[Invoice], subject_id=invoice.pk,
                ), [bill]))
        for account, note, bill in credits:
            events.append((TimelineEvent(
                customer=account.customer, kind=EventKind.CREDIT_NOTE,
                occurred_at=_at(note.issued_on, 9, 30),
                summary=f"Credit note {note.number} for "
                f"{format_money(note.amount, note.currency)} on {bill.invoice.number}: "
                f"{note.reason}",
                details={"number": note.number, "amount": str(note.amount),
                         "currency": note.currency, "invoice": bill.invoice.number},
                subject_type=types[CreditNote], subject_id=note.pk,
            ), [bill]))
        for account, receipt in receipts:
            payment = receipt.payment
            numbers = [bill.invoice.number for bill, _ in receipt.lines]
            events.append((TimelineEvent(
                customer=account.customer, kind=EventKind.PAYMENT_RECEIVED,
                occurred_at=_at(payment.received_on, 11),
                summary=workspace.payment_summary(payment, invoices=numbers),
                details={"amount": str(payment.amount), "currency": payment.currency,
                         "reference": payment.reference, "invoices": numbers},
                subject_type=types[Payment], subject_id=payment.pk,
            ), [bill for bill, _ in receipt.lines]))
        # Documents of the reference day at their usual hours, but none later
        # than now: a demo seeded in the morning shows no payment "at 11".
        now = timezone.now()
        for event, _ in events:
            event.occurred_at = min(event.occurred_at, now)
        saved = TimelineEvent.objects.bulk_create([event for event, _ in events], batch_size=BATCH_SIZE)
        events_link({event.pk: {bill.invoice.pk for bill in bills}
                     for event, (_, bills) in zip(saved, events, strict=True) if bills})
        self.events += saved

    def _hold_event(self, account: _Account) -> TimelineEvent:
        """Who put an account seeded on credit hold there, and when: a month
        after its oldest open invoice fell due (the day before the reference
        date at the latest), as a manager changing the card would record it."""
        customer, manager = account.customer, self.users["manager"]
        unpaid = [b.invoice.due_date for b in account.bills if b.cents > sum(c for _, c in b.parts)]
        day = min(min(unpaid, default=self.today) + _day(30), self.today - _day(1))
        return TimelineEvent(
            customer=customer, kind=EventKind.ACCOUNT_CHANGED, actor=manager,
            occurred_at=_at(max(day, customer.customer_since), 9),
            summary=f"Put on credit hold by {person_name(manager)}: payments stopped; on hold until the "
            "overdue balance is cleared or a plan agreed",
            details={"before": {"on_credit_hold": False}, "after": {"on_credit_hold": True}},
        )


def _balance_set(bill: _Bill, *, until: dt.date | None) -> None:
    """The invoice's open amount, status and settlement day as what was paid or
    credited on it before `until` (everything: None) leaves them."""
    parts = [(day, cents) for day, cents in bill.parts if until is None or day < until]
    open_cents = bill.cents - sum(cents for _, cents in parts)
    invoice = bill.invoice
    invoice.open_amount = _money(open_cents)
    if open_cents == 0:
        invoice.status, invoice.settled_on = InvoiceStatus.PAID, max(day for day, _ in parts)
    else:
        invoice.status, invoice.settled_on = InvoiceStatus.OPEN, None


def _reference(receipt: _Receipt) -> str:
    first = receipt.lines[0][0].invoice.number
    if len(receipt.lines) == 1 and receipt.kind == "run":
        return first
    return {
        "run": f"Payment run {receipt.received_on:%d.%m.%Y}: {len(receipt.lines)} invoices",
        "part": f"{first} part payment",
        "on_account": f"On account {first}",
        "cod": f"Cash on delivery {first}",
        "prepayment": f"Prepayment {first}",
    }.get(receipt.kind, first)
