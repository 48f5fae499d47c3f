"""Fixtures for dunning delivery: a real SMTP server on loopback that keeps what
it receives, and rendered letters kept in a temporary media folder."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import redis
import time_machine
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from django.db import connection, transaction
from kombu import pools as kombu_pools

from ar_collections.default_policies import ladders_install_missing
from ar_collections.delivery import actions_deliver
from ar_collections.dunning import run_plan, run_start
from ar_collections.models import DunningAction, DunningStep, LatePaymentPolicy, PolicyMinimum, StepFee
from arcrm.celery import app
from customers.models import Customer, Segment
from tests import redis_databases
from tests.arcrm import conftest as processes

# The process fixtures of tests/arcrm/conftest.py (a conftest's fixtures are
# seen only below its own folder).
spawn, wait_for = processes.spawn, processes.wait_for


class _Mailbox:
    """aiosmtpd handler: accepts and keeps every message, or answers with `refusal`."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refusal: str | None = None
        self.sender_refusal: str | None = None
        self.password: str | None = None  # what a login must give; any login fails without one
        self.login_sessions: list = []  # each session that tried to log in (smtplib tries two ways)
        self._lock = threading.Lock()

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        with self._lock:
            if not any(s is session for s in self.login_sessions):
                self.login_sessions.append(session)
        ok = self.password is not None and auth_data.password == self.password.encode()
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 235 or 535

    async def handle_MAIL(self, server, session, envelope, address, mail_options) -> str:
        if self.sender_refusal:
            return self.sender_refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.refusal:
            return self.refusal
        with self._lock:
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, host: str, port: int, mailbox: _Mailbox) -> None:
        self.host, self.port, self._mailbox = host, port, mailbox

    @property
    def messages(self) -> list[EmailMessage]:
        return list(self._mailbox.messages)

    @property
    def envelopes(self) -> list[tuple[str, list[str]]]:
        return list(self._mailbox.envelopes)

    def refuse_with(self, reply: str | None) -> None:
        """Answer every message with this SMTP reply, e.g. "550 5.1.1 Mailbox unavailable"."""
        self._mailbox.refusal = reply

    def refuse_sender(self, reply: str | None) -> None:
        """Answer MAIL FROM with this SMTP reply: the server will not send as our address."""
        self._mailbox.sender_refusal = reply

    @property
    def logins(self) -> int:
        """Sessions that tried to log in, right or wrong."""
        return len(self._mailbox.login_sessions)

    def accept_password(self, password: str | None) -> None:
        """Let a client that logs in with this password in (None: refuse every login, with 535).
        A client that does not log in is let in whatever this says."""
        self._mailbox.password = password


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server(settings) -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 that Django's SMTP backend sends to."""
    mailbox = _Mailbox()
    # aiosmtpd logs every SMTP command at INFO; failures still show as warnings.
    mail_log = logging.getLogger("mail.log")
    level = mail_log.level
    mail_log.setLevel(logging.WARNING)
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port(),
                            authenticator=mailbox.authenticate, auth_require_tls=False)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = controller.hostname
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    try:
        yield SmtpServer(controller.hostname, controller.port, mailbox)
    finally:
        controller.stop()
        mail_log.setLevel(level)


class SilentServer:
    """Takes connections on `port` and never says a word: a mail server that hangs."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # closed at the end of the test
            while True:
                self.connections.append(self._listener.accept()[0])

    def close(self) -> None:
        # Shut down first: a socket closed while a thread waits in accept() on
        # it keeps listening (Linux) and keeps the port from another server.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def silent_smtp(settings) -> Iterator[SilentServer]:
    """Django's SMTP backend pointed at a server that never answers, with a 1 s timeout."""
    server = SilentServer()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", server.port, 1
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening, closed: nothing answers there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def broker_down(settings):
    """The project's Celery app publishing to a broker nothing answers at."""
    keys = ("broker_url", "task_publish_retry", "task_always_eager", "broker_transport_options")
    saved = {key: app.conf[key] for key in keys}
    app.conf.update(broker_url=f"redis://127.0.0.1:{closed_port()}/0", task_publish_retry=False,
                    task_always_eager=False,
                    # Given up at once: kombu's connection retries count time, which a frozen clock stops.
                    broker_transport_options={**saved["broker_transport_options"], "max_retries": 0})
    _drop_broker_connections()  # the next publish connects with the settings above
    yield
    _drop_broker_connections()
    app.conf.update(saved)


@pytest.fixture
def broker_hangs() -> Iterator[SilentServer]:
    """The project's Celery app, configured as it runs, publishing to a broker
    that takes the connection and never answers (a hung server, a firewall
    that swallows the packets)."""
    server = SilentServer()
    keys = ("broker_url", "task_always_eager")
    saved = {key: app.conf[key] for key in keys}
    app.conf.update(broker_url=f"redis://127.0.0.1:{server.port}/0", task_always_eager=False)
    _drop_broker_connections()
    yield server
    server.close()
    _drop_broker_connections()
    app.conf.update(saved)


@pytest.fixture
def broker_queue(settings) -> Iterator[Callable[[], list[dict]]]:
    """The suite's Redis as the broker, under key names of this test's own (a
    worker elsewhere on the same Redis database takes nothing of it); gives the
    headers of the messages in the default queue."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    saved = app.conf.broker_transport_options
    app.conf.update(broker_transport_options={**saved, "global_keyprefix": prefix})
    _drop_broker_connections()
    yield lambda: [json.loads(raw)["headers"] for raw in broker.lrange(f"{prefix}celery", 0, -1)]
    _drop_broker_connections()
    app.conf.update(broker_transport_options=saved)
    for key in broker.scan_iter(f"{prefix}*"):
        broker.delete(key)


def _drop_broker_connections() -> None:
    """Close the app's broker connections and forget its pools, kombu's shared
    ones included (even an eager task takes a producer from them)."""
    app.pool.force_close_all()
    kombu_pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def app_worker_smtp(monkeypatch) -> Iterator[SmtpServer]:
    """A real SMTP server on loopback for the app_worker started after it."""
    from tests.arcrm.test_celery_worker import _smtp_for_workers  # it imports this module

    yield from _smtp_for_workers(_Mailbox(), monkeypatch)


@pytest.fixture
def app_worker(spawn, wait_for, tmp_path, transactional_db, settings) -> Iterator[processes.Spawned]:
    """A real Celery worker that takes the tasks the project's own code enqueues
    in this process (its default queue, on a Redis database apart and under
    broker keys of this test's own), working on this test's database: what a
    page or a task hands over is carried out as in production, not called by
    the test."""
    from tests.arcrm.test_celery_worker import _test_database_url  # it imports this module

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL: the worker cannot see an in-memory SQLite test database")
    url = redis_databases.redis_url(redis_databases.APP_WORKER)
    prefix = redis_databases.key_prefix()
    name = f"app-{uuid.uuid4().hex[:12]}"
    env = {key: value for key, value in os.environ.items() if key != "CELERY_BROKER_URL"}
    env.update(DATABASE_URL=_test_database_url(), REDIS_URL=url, ARCRM_VAR_DIR=str(tmp_path / "var"),
               SECRET_KEY=env.get("SECRET_KEY") or "test-only-key", DJANGO_SETTINGS_MODULE="arcrm.settings",
               **redis_databases.worker_env(prefix))
    process = spawn("-m", "celery", "-A", "tests.worker_app", "worker", "--concurrency", "1",
                    "-n", f"{name}@%h", "-l", "info", "--without-mingle", "--without-gossip",
                    env=env, name="app-worker")
    saved = {key: app.conf[key] for key in ("broker_url", "task_always_eager", "broker_transport_options")}
    app.conf.update(broker_url=url, task_always_eager=False,
                    broker_transport_options=redis_databases.transport_options(prefix))
    _drop_broker_connections()  # the next publish goes to the worker's Redis

    def answers_ping() -> bool:
        assert process.popen.poll() is None, f"the worker exited early:\n{process.output()}"
        return bool(app.control.ping(destination=[f"{name}@{socket.gethostname()}"], timeout=1))

    try:
        wait_for(answers_ping, timeout=60, message="the Celery worker to answer a ping")
        yield process
    finally:
        # Warm shutdown, as in production; gone before transactional_db empties its tables.
        returncode = process.stop(timeout=30)
        _drop_broker_connections()
        app.conf.update(saved)
        redis_databases.delete_keys(url, prefix)
        assert returncode == 0, process.output()


@pytest.fixture
def eager_celery():
    """Tasks run in this process when enqueued, as a worker would run them."""
    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path: Path) -> None:
    """Rendered letters go to a folder of the test's own, never var/media."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def pdf_text():
    """pdf_text(path or bytes) → the text poppler's pdftotext reads from the PDF."""

    def read(source: Path | bytes) -> str:
        data = source.read_bytes() if isinstance(source, Path) else source
        result = subprocess.run(
            ["pdftotext", "-layout", "-", "-"], input=data, capture_output=True, check=True, timeout=30
        )
        return result.stdout.decode()

    return read


@pytest.fixture
def pdf_pages():
    def count(data: bytes) -> int:
        result = subprocess.run(["pdfinfo", "-"], input=data, capture_output=True, check=True, timeout=30)
        line = next(x for x in result.stdout.decode().splitlines() if x.startswith("Pages:"))
        return int(line.split()[1])

    return count


# --- accounts, plans and deliveries ----------------------------------------------

DUE = dt.date(2026, 3, 2)


@pytest.fixture
def _frozen_today():
    """The collections pages' tests all run on 5 Aug 2025 at 09:00 UTC."""
    with time_machine.travel(dt.datetime(2025, 8, 5, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


def frozen(day: dt.date):
    """Freeze the clock at 06:00 UTC on `day`: planning and delivery read today's date."""
    return time_machine.travel(dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC), tick=False)


@contextlib.contextmanager
def held_by_another_worker(model, pk: int) -> Iterator[None]:
    """Another worker's transaction holds the row's lock meanwhile (the test
    must be transactional, so that the other connection sees the row)."""
    held, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        try:
            with transaction.atomic():
                model.objects.select_for_update().get(pk=pk)
                held.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert held.wait(timeout=10)
        yield
    finally:
        release.set()
        thread.join(timeout=30)


@contextlib.contextmanager
def done_by_another_worker(work: Callable[[], object]) -> Iterator[None]:
    """Another worker does `work` in a transaction it keeps open meanwhile and
    commits on leaving: what it wrote is there but not yet seen, its locks
    held (the test must be transactional)."""
    done, release, errors = threading.Event(), threading.Event(), []

    def other_worker() -> None:
        try:
            with transaction.atomic():
                work()
                done.set()
                release.wait(timeout=30)
        except BaseException as error:  # surfaced below
            errors.append(error)
            done.set()
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert done.wait(timeout=10)
        assert errors == []
        yield
    finally:
        release.set()
        thread.join(timeout=30)
    assert errors == []


class InAnotherThread:
    """`work` started on a connection of its own; called, waits for it and
    gives what it returned, or raises what it raised."""

    def __init__(self, work: Callable[[], object]) -> None:
        self._outcome: dict[str, object] = {}
        self._thread = threading.Thread(target=self._run, args=(work,))
        self._thread.start()

    def _run(self, work: Callable[[], object]) -> None:
        try:
            self._outcome["result"] = work()
        except BaseException as error:  # raised by the caller below
            self._outcome["error"] = error
        finally:
            connection.close()

    def finished(self) -> bool:
        return not self._thread.is_alive()

    def __call__(self) -> object:
        self._thread.join(timeout=60)
        assert self.finished(), "the other thread never finished"
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["result"]


in_another_thread = InAnotherThread


def someone_waits_for_a_lock(*, unless: Callable[[], bool] = lambda: False, within: float = 10) -> None:
    """Wait until another connection to the test database waits for a lock
    (or, if `unless` turns true first, no longer)."""
    deadline = time.monotonic() + within
    while not unless():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
            if cursor.fetchone()[0]:
                return
        assert time.monotonic() < deadline, "nobody waited for a lock"
        time.sleep(0.05)


@pytest.fixture
def default_ladders(db) -> None:
    """The default ladder of every segment, also on a database a transactional
    test has flushed (post_migrate reinstalls them; this makes sure of it)."""
    ladders_install_missing(
        policy_model=LatePaymentPolicy, step_model=DunningStep, minimum_model=PolicyMinimum, fee_model=StepFee
    )


@pytest.fixture
def make_account(make_customer, make_contact, make_invoice):
    """make_account(segment, **anna) → a customer whose billing contact is Anna Clerk,
    owing two invoices due on DUE: EUR 500.00 and EUR 700.00."""

    def make(segment: str = Segment.PROMPT, *, name: str = "Acme Tools", **anna) -> Customer:
        customer = make_customer(name=name, segment=segment)
        anna.setdefault("email", "anna@acme.test")
        anna.setdefault("postal_address", f"{name}\nMain Street 1\n10115 Berlin")
        make_contact(customer, name="Anna Clerk", is_primary_billing=True, **anna)
        for amount in ("500.00", "700.00"):
            make_invoice(customer, issued=DUE - dt.timedelta(days=30), due=DUE, amount=amount)
        return customer

    return make


@pytest.fixture
def plan_and_deliver():
    """plan_and_deliver(day) → plan the run of `day` and deliver what it planned, on that day."""

    def run(day: dt.date) -> dict[str, int]:
        with frozen(day):
            dunning_run = run_start(run_date=day)
            run_plan(run=dunning_run)
            ids = list(DunningAction.objects.filter(run=dunning_run).values_list("pk", flat=True))
            return actions_deliver(action_ids=ids)

    return run


def panel_open(page, link: str) -> None:
    """Open an action's panel from the account page and wait until it has the
    keyboard: htmx focuses its first field once the swap settles, and typing
    before that could start in one field and end in another."""
    page.get_by_role("link", name=link).click()
    # A function, not an expression: Playwright evals an expression in the page, which its policy refuses.
    page.wait_for_function("() => document.activeElement?.closest('#action-panel') != null")


def log_in(page, username: str) -> None:
    """Log in through the login form in a real browser (the users' password is
    pw-<username>), onto the customer list: signing in with no page asked for
    leads a collector to the worklist instead (tests/arcrm/test_home.py)."""
    from playwright.sync_api import expect

    page.goto("/login/?next=/customers/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(f"pw-{username}")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/customers/$"))


def sent_once(data: dict) -> dict:
    """A form's data with a one-time token of its own, as a form that sends
    something to the customer carries one each time it opens
    (workspace_forms._sent_once)."""
    return {**data, "submission": str(uuid.uuid4())}
