"""Every URL of the project, asked by every kind of user who must be refused,
with GET and POST, with and without htmx: a page, a fragment or an action
requested directly is no back door (DESIGN invariant 5).

The table below has one row per URL pattern; a pattern without a row fails,
so a new URL comes with its row. Each row names who may use the URL; the
others are refused (sign-in for the anonymous, 403/404/405 for the rest) and
the database is left as it was, told by PostgreSQL's own count of the rows
this transaction inserted, updated and deleted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.test import Client, TestCase, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.utils import timezone

from ar_collections.api import api_token_create
from ar_collections.models import (
    ActionStatus,
    ApiToken,
    Channel,
    Dispute,
    DisputeReason,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    ExceptionKind,
    ExceptionRequest,
    ImportKind,
    Instalment,
    Invoice,
    InvoiceStatus,
    PaperDocument,
    PaperKind,
    PaymentPlan,
    PlanStatus,
    Promise,
    ReceivablesImport,
    StepAction,
    WorkItem,
    WorkKind,
    WorkStatus,
)
from arcrm.roles import COLLECTOR, INTEGRATION, MANAGER, VIEWER
from customers.models import CollectorAbsence, Contact, ContactAbsence, ContactRole, Customer
from tests.conftest import _user

TODAY = dt.date(2025, 8, 5)
PDF = b"%PDF-1.4\n% a document\n"
pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="the writes are counted by PostgreSQL's statistics views"),
    pytest.mark.django_db,
]


# --- who may use each URL ------------------------------------------------------------

PUBLIC = "public"  # anyone: signing in and out, the front door, the icon
API = "api"  # the JSON API: a token, never the session (401 without one)
API_UNKNOWN = "api-unknown"  # a path the API does not have: 404 to all, token or not
READ = "read"  # every role, the viewer too
WORK = "work"  # those who work accounts: collectors and managers
ACCOUNT = "account"  # the account's own collector (or one covering), and managers
MANAGER_ONLY = "manager"  # managers

# Who is refused, by access; and who is let in (the weakest role that may).
REFUSED = {
    READ: ["nobody"],
    WORK: ["nobody", "viewer"],
    ACCOUNT: ["nobody", "viewer", "other_collector"],
    MANAGER_ONLY: ["nobody", "viewer", "collector"],
}
ALLOWED = {READ: "viewer", WORK: "collector", ACCOUNT: "collector", MANAGER_ONLY: "manager"}


@dataclass(frozen=True)
class Row:
    access: str
    url: Callable[[World], str]


@dataclass
class World:
    """Real rows of the collector's account, each a URL's object."""

    users: dict[str, User]
    customer: Customer
    contact: Contact
    contact_absence: ContactAbsence
    invoice: Invoice
    dispute: Dispute
    promise: Promise
    plan: PaymentPlan
    agreed_plan: PaymentPlan
    exception: ExceptionRequest
    run: DunningRun
    letter: DunningAction
    paper: PaperDocument
    item: WorkItem
    ladder_item: WorkItem
    collector_absence: CollectorAbsence
    batch: ReceivablesImport
    token: ApiToken
    secret: str


def _c(name: str, *args) -> Callable[[World], str]:
    return lambda w: reverse(f"collections:{name}", args=args)


def _account(name: str, app: str = "collections", *objects: str) -> Callable[[World], str]:
    """An account's URL: the collector's customer, then the named objects' ids."""
    return lambda w: reverse(f"{app}:{name}", args=[w.customer.pk, *(getattr(w, o).pk for o in objects)])


def _of(name: str, obj: str, *extra) -> Callable[[World], str]:
    return lambda w: reverse(f"collections:{name}", args=[getattr(w, obj).pk, *extra])


TABLE: dict[str, Row] = {
    "": Row(PUBLIC, lambda w: "/"),
    "login/": Row(PUBLIC, lambda w: reverse("login")),
    "logout/": Row(PUBLIC, lambda w: reverse("logout")),
    "favicon.ico": Row(PUBLIC, lambda w: "/favicon.ico"),
    # customers
    "customers/": Row(READ, lambda w: reverse("customers:list")),
    "customers/<int:pk>/": Row(READ, _account("detail", "customers")),
    "customers/<int:pk>/edit/": Row(ACCOUNT, _account("edit", "customers")),
    "customers/<int:pk>/timeline/": Row(READ, _account("timeline", "customers")),
    "customers/<int:pk>/contacts/new/": Row(ACCOUNT, _account("contact_add", "customers")),
    "customers/<int:pk>/contacts/<int:contact_id>/edit/": Row(
        ACCOUNT, _account("contact_edit", "customers", "contact")),
    "customers/<int:pk>/contacts/<int:contact_id>/delete/": Row(
        ACCOUNT, _account("contact_delete", "customers", "contact")),
    "customers/<int:pk>/contacts/<int:contact_id>/absences/new/": Row(
        ACCOUNT, _account("absence_add", "customers", "contact")),
    "customers/<int:pk>/absences/<int:absence_id>/delete/": Row(
        ACCOUNT, _account("absence_delete", "customers", "contact_absence")),
    # dunning runs, review, approvals
    "collections/runs/": Row(READ, _c("runs")),
    "collections/runs/start/": Row(MANAGER_ONLY, _c("run_start")),
    "collections/runs/<int:pk>/": Row(READ, _of("run_detail", "run")),
    "collections/review/": Row(WORK, _c("review")),
    "collections/review/<int:pk>/": Row(ACCOUNT, _of("action_review", "letter")),
    "collections/approvals/": Row(MANAGER_ONLY, _c("approvals")),
    "collections/approvals/<int:pk>/": Row(MANAGER_ONLY, _of("action_decide", "letter")),
    "collections/coming-up/": Row(MANAGER_ONLY, _c("coming_up")),
    # the documents' words
    "collections/wording/": Row(MANAGER_ONLY, _c("wording")),
    "collections/wording/<int:tone>/<str:language>/": Row(
        MANAGER_ONLY, lambda w: "/collections/wording/1/en/"),
    "collections/wording/<int:tone>/<str:language>/preview/": Row(
        MANAGER_ONLY, lambda w: "/collections/wording/1/en/preview/"),
    "collections/wording/<int:tone>/<str:language>/letter.pdf": Row(
        MANAGER_ONLY, lambda w: "/collections/wording/1/en/letter.pdf"),
    "collections/wording/<int:tone>/<str:language>/put-back/": Row(
        MANAGER_ONLY, lambda w: "/collections/wording/1/en/put-back/"),
    "collections/wording/<slug:kind>/<str:language>/": Row(
        MANAGER_ONLY, lambda w: "/collections/wording/statement/en/"),
    "collections/wording/<slug:kind>/<str:language>/preview/": Row(
        MANAGER_ONLY, lambda w: "/collections/wording/statement/en/preview/"),
    "collections/wording/<slug:kind>/<str:language>/document.pdf": Row(
        MANAGER_ONLY, lambda w: "/collections/wording/statement/en/document.pdf"),
    "collections/wording/<slug:kind>/<str:language>/put-back/": Row(
        MANAGER_ONLY, lambda w: "/collections/wording/statement/en/put-back/"),
    # the print queue
    "collections/letters/": Row(WORK, _c("letters")),
    "collections/letters/printed/": Row(WORK, _c("letters_printed")),
    "collections/letters/<int:pk>/pdf/": Row(ACCOUNT, _of("letter_download", "letter")),
    "collections/letters/paper/<int:pk>/pdf/": Row(ACCOUNT, _of("paper_download", "paper")),
    "collections/letters/<int:pk>/withdraw/": Row(ACCOUNT, _of("letter_withdraw", "letter")),
    "collections/letters/paper/<int:pk>/withdraw/": Row(ACCOUNT, _of("paper_withdraw", "paper")),
    # imports and API tokens
    "collections/import/": Row(MANAGER_ONLY, _c("import")),
    "collections/import/<int:pk>/": Row(MANAGER_ONLY, _of("import_detail", "batch")),
    "collections/import/<int:pk>/file": Row(MANAGER_ONLY, _of("import_file", "batch")),
    "collections/import/example/<str:kind>.csv": Row(MANAGER_ONLY, _c("import_example", "invoices")),
    "collections/api-tokens/": Row(MANAGER_ONLY, _c("api_tokens")),
    "collections/api-tokens/<int:pk>/revoke/": Row(MANAGER_ONLY, _of("api_token_revoke", "token")),
    # an account's workspace
    "collections/customers/<int:pk>/cause/": Row(ACCOUNT, _account("cause_record")),
    "collections/customers/<int:pk>/segment/": Row(MANAGER_ONLY, _account("segment_override")),
    "collections/customers/<int:pk>/call/": Row(ACCOUNT, _account("call_log")),
    "collections/customers/<int:pk>/note/": Row(ACCOUNT, _account("note_add")),
    "collections/customers/<int:pk>/copy/": Row(ACCOUNT, _account("invoice_copy")),
    "collections/customers/<int:pk>/statement/": Row(ACCOUNT, _account("statement_send")),
    "collections/customers/<int:pk>/statement.pdf": Row(READ, _account("statement_download")),
    "collections/customers/<int:pk>/promise/": Row(ACCOUNT, _account("promise_record")),
    "collections/customers/<int:pk>/payment/": Row(MANAGER_ONLY, _account("payment_record")),
    "collections/customers/<int:pk>/payment/reverse/": Row(MANAGER_ONLY, _account("payment_reverse")),
    "collections/customers/<int:pk>/credit-note/": Row(MANAGER_ONLY, _account("credit_note_record")),
    "collections/customers/<int:pk>/credit-apply/": Row(MANAGER_ONLY, _account("credit_apply")),
    "collections/customers/<int:pk>/invoices/<int:invoice_id>/write-off/": Row(
        MANAGER_ONLY, _account("invoice_write_off", "collections", "invoice")),
    "collections/customers/<int:pk>/plan/": Row(ACCOUNT, _account("plan_propose")),
    "collections/customers/<int:pk>/dispute/": Row(ACCOUNT, _account("dispute_open")),
    "collections/customers/<int:pk>/disputes/<int:dispute_id>/resolve/": Row(
        ACCOUNT, _account("dispute_resolve", "collections", "dispute")),
    "collections/customers/<int:pk>/promises/<int:promise_id>/withdraw/": Row(
        ACCOUNT, _account("promise_withdraw", "collections", "promise")),
    "collections/customers/<int:pk>/plans/<int:plan_id>/withdraw/": Row(
        ACCOUNT, _account("plan_withdraw", "collections", "plan")),
    "collections/customers/<int:pk>/plans/<int:plan_id>/amend/": Row(
        MANAGER_ONLY, _account("plan_amend", "collections", "agreed_plan")),
    "collections/customers/<int:pk>/pause/": Row(ACCOUNT, _account("pause_set")),
    "collections/customers/<int:pk>/resume/": Row(ACCOUNT, _account("pause_resume")),
    "collections/customers/<int:pk>/exception/": Row(ACCOUNT, _account("exception_request")),
    "collections/customers/<int:pk>/hand-over/": Row(ACCOUNT, _account("account_items_hand_over")),
    "collections/plans/<int:plan_id>/decide/": Row(MANAGER_ONLY, _of("plan_decide", "plan")),
    "collections/exceptions/<int:request_id>/decide/": Row(
        MANAGER_ONLY, _of("exception_decide", "exception")),
    "collections/actions/<int:pk>/": Row(READ, _of("action_detail", "letter")),
    # lists and figures
    "collections/worklist/": Row(WORK, _c("worklist")),
    "collections/cover/": Row(WORK, _c("cover")),
    "collections/cover/<int:pk>/end/": Row(ACCOUNT, _of("cover_end", "collector_absence")),
    "collections/numbers/": Row(WORK, _c("numbers")),
    "collections/numbers.csv": Row(WORK, _c("numbers_csv")),
    "collections/numbers/aged/": Row(WORK, _c("numbers_aged")),
    "collections/numbers/aged.csv": Row(WORK, _c("numbers_aged_csv")),
    "collections/policy-review/": Row(WORK, _c("policy_review")),
    "collections/policy-review.csv": Row(WORK, _c("policy_review_csv")),
    "collections/worklist/<int:item_id>/decide/": Row(ACCOUNT, _of("work_item_decide", "ladder_item")),
    "collections/worklist/<int:item_id>/<str:change>/": Row(
        ACCOUNT, _of("work_item_change", "item", "done")),
    # the JSON API
    "api/v1/customers/<str:account_number>/": Row(
        API, lambda w: reverse("api:customer_standing", args=[w.customer.account_number])),
    "api/v1/customers/": Row(API, lambda w: reverse("api:customers")),
    "api/v1/invoices/": Row(API, lambda w: reverse("api:invoices")),
    "api/v1/payments/": Row(API, lambda w: reverse("api:payments")),
    "api/v1/payments/reversals/": Row(API, lambda w: reverse("api:payment_reversals")),
    "api/v1/": Row(API_UNKNOWN, lambda w: "/api/v1/no-such-thing/"),
}


def _routes(resolver: URLResolver, prefix: str = "") -> list[str]:
    """Every pattern's full route, the admin's aside (it has its own checks, by Django)."""
    routes = []
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue
            routes.extend(_routes(pattern, route))
        elif isinstance(pattern, URLPattern):
            routes.append(route)
    return routes


# --- one account's world, written once for the module --------------------------------


def _users() -> dict[str, User]:
    return {
        "nobody": User.objects.create_user("nobody", password="pw-nobody"),
        "viewer": _user("victor", VIEWER),
        "collector": _user("carla", COLLECTOR),
        "other_collector": _user("otto", COLLECTOR),
        "manager": _user("maria", MANAGER),
        "erp": _user("erp", INTEGRATION),
    }


def _world(users: dict[str, User], *, owner: str, number: int) -> World:
    """An account of `owner`'s with one of each thing a URL names."""
    collector, manager = users[owner], users["manager"]
    colleague = users["other_collector" if owner == "collector" else "collector"]
    customer = Customer.objects.create(account_number=f"C-{number}", name=f"Customer {number}",
                                       collector=collector, customer_since=dt.date(2020, 1, 1))
    contact = Contact.objects.create(customer=customer, name="Ann Payable", role=ContactRole.AP,
                                     email=f"ann{number}@example.com")
    stand_in = Contact.objects.create(customer=customer, name="Bob Payable", role=ContactRole.AP,
                                      email=f"bob{number}@example.com")
    contact_absence = ContactAbsence.objects.create(contact=contact, delegate=stand_in,
                                                    starts_on=TODAY, ends_on=TODAY + dt.timedelta(days=9))
    invoice = Invoice.objects.create(
        number=f"INV-{number}", customer=customer, issue_date=dt.date(2025, 6, 1),
        due_date=dt.date(2025, 7, 1), currency=customer.currency, total_amount=Decimal("500.00"),
        open_amount=Decimal("500.00"),
        status=InvoiceStatus.OPEN)
    dispute = Dispute.objects.create(customer=customer, invoice=invoice, reason=DisputeReason.PRICE,
                                     description="Price differs", disputed_amount=Decimal("500.00"),
                                     opened_by=collector, opened_on=TODAY,
                                     answer_due_on=TODAY + dt.timedelta(days=14))
    promise = Promise.objects.create(
        customer=customer, contact=contact, promised_on=TODAY + dt.timedelta(days=7), grace_days=2,
        made_on=TODAY, made_by=collector, amount=Decimal("500.00"))
    promise.invoices.add(invoice)
    plan, agreed_plan = (
        PaymentPlan.objects.create(customer=customer, status=status, grace_days=3, proposed_by=collector,
                                   proposed_on=TODAY, total_amount=Decimal("500.00"))
        for status in (PlanStatus.AWAITING_APPROVAL, PlanStatus.ACTIVE))
    for each in (plan, agreed_plan):
        each.invoices.add(invoice)
        Instalment.objects.create(plan=each, number=1, due_on=TODAY + dt.timedelta(days=20),
                                  amount=Decimal("500.00"))
    exception = ExceptionRequest.objects.create(customer=customer, invoice=invoice, kind=ExceptionKind.PAUSE,
                                                reason="Waiting for their bank", requested_by=collector,
                                                requested_on=TODAY, pause_until=TODAY + dt.timedelta(days=40))
    run, _ = DunningRun.objects.get_or_create(run_date=TODAY)
    cycle = DunningCycle.objects.create(customer=customer, number=1, opened_on=TODAY)
    step = DunningStep.objects.filter(policy__segment="prompt", action=StepAction.LETTER).first()
    letter = DunningAction.objects.create(
        run=run, cycle=cycle, customer=customer, step=step, status=ActionStatus.DONE, channel=Channel.LETTER,
        planned_on=TODAY, pay_by=TODAY + dt.timedelta(days=10), done_at=timezone.now(),
        recipient_address="Main Street 1, 10115 Berlin")
    DunningActionInvoice.objects.create(action=letter, invoice=invoice, open_amount=invoice.total_amount,
                                        currency=invoice.currency)
    letter.letter_pdf.save(f"dunning-{letter.pk}.pdf", ContentFile(PDF))
    paper = PaperDocument(customer=customer, kind=PaperKind.STATEMENT, recipient=contact,
                          recipient_name=contact.name, recipient_address="Main Street 1, 10115 Berlin",
                          created_by=collector, done_at=timezone.now())
    paper.pdf.save("statement.pdf", ContentFile(PDF))
    item = WorkItem.objects.create(key=f"test:call:{customer.pk}", kind=WorkKind.CALL, customer=customer,
                                   assignee=collector, title="Call the customer", due_on=TODAY)
    ladder_item = WorkItem.objects.create(key=f"test:ended:{customer.pk}", kind=WorkKind.LADDER_ENDED,
                                          customer=customer, assignee=collector, title="Ladder ended",
                                          due_on=TODAY, action=letter)
    collector_absence = CollectorAbsence.objects.create(
        user=collector, stand_in=colleague, starts_on=TODAY + dt.timedelta(days=30),
        ends_on=TODAY + dt.timedelta(days=35), recorded_by=collector)
    batch = ReceivablesImport.objects.create(kind=ImportKind.INVOICES, file_name="invoices.csv",
                                             text="number\n", created_by=manager)
    token, secret = api_token_create(user=users["erp"], name=f"ERP {number}", actor=manager)
    return World(users=users, customer=customer, contact=contact, contact_absence=contact_absence,
                 invoice=invoice, dispute=dispute, promise=promise, plan=plan, agreed_plan=agreed_plan,
                 exception=exception, run=run, letter=letter, paper=paper, item=item, ladder_item=ladder_item,
                 collector_absence=collector_absence, batch=batch, token=token, secret=secret)


@dataclass
class Worlds:
    carlas: World  # the collector's account: the one every URL is asked about
    ottos: World  # another collector's, whose rows must not be reached through carla's account


@contextmanager
def worlds_written(django_db_blocker, tmp_path_factory) -> Iterator[Worlds]:
    """Written once, in a transaction rolled back after the module's last test
    (as TestCase.setUpTestData does); each request is rolled back too."""
    media = tmp_path_factory.mktemp("media")
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=media), time_machine_at(TODAY):
        atomics = TestCase._enter_atomics()
        try:
            users = _users()
            yield Worlds(carlas=_world(users, owner="collector", number=1001),
                         ottos=_world(users, owner="other_collector", number=2002))
        finally:
            TestCase._rollback_atomics(atomics)


@pytest.fixture(scope="module")
def worlds(django_db_setup, django_db_blocker, tmp_path_factory):
    with worlds_written(django_db_blocker, tmp_path_factory) as written:
        yield written


@pytest.fixture
def world(worlds) -> World:
    return worlds.carlas


def time_machine_at(day: dt.date):
    return time_machine.travel(dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC), tick=False)


# --- asking ------------------------------------------------------------------------------

COMBINATIONS = [("get", False), ("get", True), ("post", False), ("post", True)]


def _writes() -> int:
    """Rows this transaction inserted, updated or deleted so far, sessions aside
    (signing in writes one, and it is no change to the accounts)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
                       "FROM pg_stat_xact_user_tables WHERE relname <> 'django_session'")
        return cursor.fetchone()[0]


@dataclass
class Answer:
    status: int
    location: str
    writes: int


def _ask(client: Client, method: str, url: str, *, htmx: bool, **headers) -> Answer:
    if htmx:
        headers["HX-Request"] = "true"
    with transaction.atomic():
        before = _writes()
        response = getattr(client, method)(url, headers=headers)
        writes = _writes() - before
        transaction.set_rollback(True)
    return Answer(response.status_code, response.get("Location", ""), writes)


def _client(user: User | None) -> Client:
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


def _failures(world: World, who: str, rows: dict[str, Row], judge, *, methods=("get", "post")) -> list[str]:
    client = _client(world.users.get(who))
    failures = []
    for route, row in rows.items():
        url = row.url(world)
        for method, htmx in COMBINATIONS:
            if method not in methods:
                continue
            answer = _ask(client, method, url, htmx=htmx)
            wrong = judge(row, answer)
            if wrong:
                failures.append(f"{who} {method.upper()}{' htmx' if htmx else ''} {url} ({route}): {wrong}")
    return failures


def _refusal(row: Row, answer: Answer) -> str:
    said = ""
    if answer.status not in (403, 404, 405):
        said = f"answered {answer.status}, not a refusal"
    if answer.writes:
        said += f"{'; ' if said else ''}{answer.writes} rows written"
    return said


# --- the tests ---------------------------------------------------------------------------


def test_every_url_of_the_project_has_a_row_in_the_table(world):
    routes = set(_routes(get_resolver()))

    assert sorted(routes - set(TABLE)) == [], "URL patterns without a row: add them to TABLE"
    assert sorted(set(TABLE) - routes) == [], "rows of URL patterns that are gone"


def test_each_rows_url_is_the_url_of_its_pattern(world):
    wrong = {route: row.url(world) for route, row in TABLE.items()
             if resolve(row.url(world)).route != route}

    assert wrong == {}


def test_the_anonymous_are_sent_to_sign_in_and_change_nothing(world):
    sign_in = reverse(settings.LOGIN_URL)

    def judge(row: Row, answer: Answer) -> str:
        said = ""
        if row.access == API_UNKNOWN:
            if answer.status != 404:
                said = f"answered {answer.status}, not 404"
        elif row.access == API:
            if answer.status not in (401, 405):  # 405: a method the endpoint never takes
                said = f"answered {answer.status}, not 401"
        elif not (answer.status == 302 and answer.location.startswith(sign_in + "?next=")):
            said = f"answered {answer.status} {answer.location}, not the sign-in page"
        if answer.writes:
            said += f"{'; ' if said else ''}{answer.writes} rows written"
        return said

    rows = {route: row for route, row in TABLE.items() if row.access != PUBLIC}
    failures = _failures(world, "anonymous", rows, judge)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("who", ["nobody", "viewer", "collector", "other_collector"])
def test_a_user_the_url_is_not_for_is_refused_and_changes_nothing(world, who):
    rows = {route: row for route, row in TABLE.items() if who in REFUSED.get(row.access, [])}

    failures = _failures(world, who, rows, _refusal)
    assert not failures, "\n".join(failures)


def test_a_viewer_changes_nothing_through_a_page_they_may_read(world):
    rows = {route: row for route, row in TABLE.items() if row.access == READ}

    failures = _failures(world, "viewer", rows, _refusal, methods=("post",))
    assert not failures, "\n".join(failures)


def test_an_integration_account_signed_in_opens_no_page(world):
    """Its session is from before an admin put it in the Integration group:
    it signs API requests with a token and is refused every page, the ones
    for managers above all (arcrm.roles.IntegrationAccountMiddleware)."""
    rows = {route: row for route, row in TABLE.items() if row.access in ALLOWED}

    failures = _failures(world, "erp", rows, _refusal)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("who", ["nobody", "viewer", "collector", "other_collector", "manager"])
def test_the_api_takes_no_session_for_a_token(world, who):
    def judge(row: Row, answer: Answer) -> str:
        refusals = (404,) if row.access == API_UNKNOWN else (401, 405)
        return "" if answer.status in refusals and not answer.writes else f"answered {answer.status}"

    rows = {route: row for route, row in TABLE.items() if row.access in (API, API_UNKNOWN)}
    failures = _failures(world, who, rows, judge)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("access", [READ, WORK, ACCOUNT, MANAGER_ONLY])
def test_the_role_a_url_is_for_is_let_in(world, access):
    def judge(row: Row, answer: Answer) -> str:
        if answer.status in (401, 403, 404) or answer.status >= 500:
            return f"answered {answer.status}"
        return ""

    rows = {route: row for route, row in TABLE.items() if row.access == access}
    failures = _failures(world, ALLOWED[access], rows, judge)
    assert not failures, "\n".join(failures)


def test_the_api_lets_its_token_in(world):
    client = _client(None)
    bearer = {"Authorization": f"Bearer {world.secret}"}
    answers = {route: _ask(client, "get" if "<str:account_number>" in route else "post", row.url(world),
                           htmx=False, **bearer).status
               for route, row in TABLE.items() if row.access == API}

    assert {route: status for route, status in answers.items() if status in (401, 403)} == {}
    assert answers["api/v1/customers/<str:account_number>/"] == 200


def test_an_accounts_url_reaches_no_row_of_another_account(worlds):
    """The account in the URL is one the user may change; the row after it is
    another collector's: asking through one's own account is no way into another's."""
    mixed = replace(worlds.ottos, customer=worlds.carlas.customer)
    failures = []
    for access in (ACCOUNT, MANAGER_ONLY):
        rows = {route: row for route, row in TABLE.items()
                if row.access == access and route.count("<int:") == 2 and "<int:pk>" in route}
        failures += _failures(mixed, ALLOWED[access], rows, _refusal)

    assert not failures, "\n".join(failures)


def _token_of(user: User, **fields) -> str:
    """A token's secret, used a moment ago: a request does not write its last use again."""
    token, secret = api_token_create(user=user, name=f"Token of {user.username}")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now(), **fields)
    return secret


@pytest.mark.parametrize("who", ["viewer", "collector"])
def test_a_token_records_nothing_for_a_user_who_may_only_read(world, who):
    client = _client(None)
    bearer = {"Authorization": f"Bearer {_token_of(world.users[who])}"}
    answers = {}
    for route, row in TABLE.items():
        if row.access == API:
            method = "get" if "<str:account_number>" in route else "post"
            answers[route] = _ask(client, method, row.url(world), htmx=False, **bearer)

    assert answers.pop("api/v1/customers/<str:account_number>/").status == 200
    assert {route: (a.status, a.writes) for route, a in answers.items()} == {
        route: (403, 0) for route in answers}


@pytest.mark.parametrize("token", ["of a user without a role", "revoked", "of a user no longer active"])
def test_a_token_that_acts_for_nobody_is_refused_everywhere(world, token):
    users = world.users
    if token == "of a user without a role":
        secret = _token_of(users["nobody"])
    elif token == "revoked":
        secret = _token_of(users["manager"], revoked_at=timezone.now(), revoked_by=users["manager"])
    else:
        leaver = _user("leona", MANAGER)
        secret = _token_of(leaver)
        User.objects.filter(pk=leaver.pk).update(is_active=False)
    client = _client(None)
    answers = {}
    for route, row in TABLE.items():
        if row.access == API:
            for method in ("get", "post"):
                answer = _ask(client, method, row.url(world), htmx=False, Authorization=f"Bearer {secret}")
                answers[f"{method.upper()} {route}"] = (answer.status in (401, 403, 405), answer.writes)

    assert answers == {key: (True, 0) for key in answers}


@pytest.mark.parametrize("access", [READ, WORK, ACCOUNT, MANAGER_ONLY])
def test_no_url_takes_a_method_other_than_get_and_post(world, access):
    """Only GET (with HEAD) and POST are checked above: any other method is
    refused before a view reads a thing, even from the role the URL is for."""
    client = _client(world.users[ALLOWED[access]])
    failures = []
    for route, row in TABLE.items():
        if row.access == access:
            for method in ("put", "patch", "delete"):
                answer = _ask(client, method, row.url(world), htmx=False)
                if answer.status != 405 or answer.writes:
                    failures.append(f"{method.upper()} {route}: {answer.status}, {answer.writes} written")

    assert not failures, "\n".join(failures)


def test_a_stand_in_works_the_account_only_while_the_cover_lasts(world):
    """Carla away today, Otto covers: her account's URLs are his (ending her
    absence is for her or a manager; her proposal of a plan is hers to withdraw,
    workspace.plan_withdraw_refusal). Called off, they are refused to him again."""
    carla, otto = world.users["collector"], world.users["other_collector"]
    away = CollectorAbsence.objects.create(user=carla, stand_in=otto, starts_on=TODAY,
                                           ends_on=TODAY + dt.timedelta(days=3), recorded_by=carla)
    rows = {route: row for route, row in TABLE.items()
            if row.access == ACCOUNT and route != "collections/cover/<int:pk>/end/"}

    def let_in(row: Row, answer: Answer) -> str:
        return f"answered {answer.status}" if answer.status in (403, 404) or answer.status >= 500 else ""

    proposers = "collections/customers/<int:pk>/plans/<int:plan_id>/withdraw/"
    his_now = {route: row for route, row in rows.items() if route != proposers}
    covering = _failures(world, "other_collector", his_now, let_in)
    CollectorAbsence.objects.filter(pk=away.pk).update(cancelled=True)
    called_off = _failures(world, "other_collector", rows, _refusal)

    assert not covering, "\n".join(covering)
    assert not called_off, "\n".join(called_off)


# What the holder of an item handed to them may do on its account (arcrm.roles.may_work_for_item):
# the item's own changes, the call, the promise and the note, and handing the item on.
FOR_AN_ITEM = {
    "collections/customers/<int:pk>/call/",
    "collections/customers/<int:pk>/note/",
    "collections/customers/<int:pk>/promise/",
    "collections/customers/<int:pk>/hand-over/",
    "collections/worklist/<int:item_id>/<str:change>/",
}


def test_a_fellow_collector_holding_a_handed_over_item_works_the_account_for_it_and_no_further(world):
    """Carla hands Otto her call: the item's URLs on her account are his, the
    rest of it stays hers (her other item, a ladder's, too). Once the item is
    done, every URL of her account is refused to him again."""
    carla, otto = world.users["collector"], world.users["other_collector"]
    WorkItem.objects.filter(pk=world.item.pk).update(assignee=otto, handed_by=carla, handed_reason="Fair day")
    rows = {route: row for route, row in TABLE.items() if row.access == ACCOUNT}

    def let_in(row: Row, answer: Answer) -> str:
        return f"answered {answer.status}" if answer.status in (403, 404) or answer.status >= 500 else ""

    try:
        his = _failures(world, "other_collector",
                        {r: row for r, row in rows.items() if r in FOR_AN_ITEM}, let_in)
        not_his = _failures(world, "other_collector",
                            {r: row for r, row in rows.items() if r not in FOR_AN_ITEM}, _refusal)
        WorkItem.objects.filter(pk=world.item.pk).update(status=WorkStatus.DONE, handed_by=None)
        done = _failures(world, "other_collector", rows, _refusal)
    finally:
        WorkItem.objects.filter(pk=world.item.pk).update(assignee=carla, handed_by=None, handed_reason="",
                                                         status=WorkStatus.OPEN)

    assert sorted(FOR_AN_ITEM - set(rows)) == []
    assert not his, "\n".join(his)
    assert not not_his, "\n".join(not_his)
    assert not done, "\n".join(done)
