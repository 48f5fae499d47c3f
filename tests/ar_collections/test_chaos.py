"""Chaos: the nightly dunning run through real processes that fail.

Two Celery workers and two beats with the same schedule (a misconfigured
deployment: both beats fire the nightly run), Redis, this test's PostgreSQL
database and a slow SMTP server on loopback. One worker is killed with SIGKILL
while it is in the middle of a delivery batch, then the run is repeated.
Invariants 1 and 2 of DESIGN.md must hold: no step planned or e-mailed twice,
no eligible account left out.

One duplicate no SMTP client can prevent is told apart rather than counted as
a failure (see ar_collections/delivery.py): the server accepts the killed
worker's e-mail only after the SIGKILL was sent, so its reply reaches a dead
process, the worker's transaction rolls back and the e-mail goes out again,
with the same Message-ID. The killed process lingers for a few milliseconds
while the kernel tears it down, its socket still open, and the server cannot
know. Such a copy is printed as "REPLY LOST WITH THE WORKER"; any other
duplicate (one accepted before the kill, one from a worker that was not
killed, three copies) fails the test.

Run it with `-rP` (or `-s`) to see the timings and counts it prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from email import message_from_bytes, policy
from pathlib import Path
from typing import NamedTuple

import pytest
import redis
from aiosmtpd.controller import Controller
from celery import Celery
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count

from ar_collections.delivery import message_id
from ar_collections.dunning import ladders
from ar_collections.models import (
    ActionStatus,
    Channel,
    DunningAction,
    DunningRun,
    Invoice,
    InvoiceStatus,
    StepAction,
)
from customers.models import Contact, ContactRole, Customer, ReminderChannel, Segment, TimelineEvent
from tests import redis_databases
from tests.arcrm import conftest as processes
from tests.arcrm.conftest import Spawned
from tests.arcrm.test_celery_worker import _test_database_url

# The process fixtures of tests/arcrm/conftest.py (a conftest's fixtures are
# seen only below its own folder).
spawn, free_port, wait_for = processes.spawn, processes.free_port, processes.wait_for

# Segments whose first step is an e-mail sent without review (checked against
# the ladders below): each eligible account gets exactly one e-mail today.
SEGMENTS = (Segment.PROMPT, Segment.OCCASIONAL_SLIP, Segment.NEW)
ACCOUNTS = 300
# Of each kind of account that must get nothing today.
DECOYS_PER_KIND = 10
# The SMTP server takes this long over each message, so the run lasts long
# enough (~120 ms an action, ~5 s for the first quarter) to kill a worker mid-batch.
SMTP_DELAY = 0.075
# The worker is killed once this many e-mails have arrived (a quarter of the run).
KILL_AFTER = ACCOUNTS // 4
# Time for a beat to start (imports, Django setup) before the minute it fires at:
# a few seconds on a quiet machine, several times that on a loaded one.
BEAT_LEAD = dt.timedelta(seconds=30)
# How long the workers may go without a sign of progress (an e-mail received, a
# line logged) before the test gives up on them. Not a deadline for the whole:
# on a loaded machine the surviving worker takes minutes over what is left.
STALLED_FOR = 60


# --- the slow SMTP server ---------------------------------------------------------


@dataclass(frozen=True)
class Received:
    message_id: str
    recipients: tuple[str, ...]
    peer_port: int  # the client's port: tells which worker's SMTP session sent it
    at: float  # time.monotonic() when the server accepted it


class _SlowMailbox:
    """aiosmtpd handler: takes `delay` over each message, then accepts and keeps it.

    The delay sits where real servers spend their time (content checks, the
    queue file's fsync): after the client sent the message, before the reply.
    A client that hangs up meanwhile cancels the handler (aiosmtpd does that
    on EOF), so its message is never kept: this server takes responsibility
    for a message when it replies, and from then on keeps it whether or not
    the client lives to read the reply.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._received: list[Received] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self._received.append(Received(
                str(message["Message-ID"]), tuple(envelope.rcpt_tos), session.peer[1], time.monotonic()
            ))
        return "250 Message accepted for delivery"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def count(self) -> int:
        with self._lock:
            return len(self._received)


@pytest.fixture
def slow_smtp(free_port) -> Iterator[tuple[Controller, _SlowMailbox]]:
    """The slow SMTP server on loopback, for the workers (EMAIL_HOST/EMAIL_PORT in their environment)."""
    mailbox = _SlowMailbox(SMTP_DELAY)
    mail_log = logging.getLogger("mail.log")  # aiosmtpd logs every SMTP command at INFO
    level = mail_log.level
    mail_log.setLevel(logging.WARNING)
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port)
    controller.start()
    try:
        yield controller, mailbox
    finally:
        controller.stop()
        mail_log.setLevel(level)


# --- broker and processes ---------------------------------------------------------


@pytest.fixture
def chaos_key_prefix() -> str:
    """The broker keys of this test's workers, beats and sender (tests/redis_databases.py)."""
    return redis_databases.key_prefix()


@pytest.fixture
def chaos_redis_url(chaos_key_prefix) -> Iterator[str]:
    url = redis_databases.redis_url(redis_databases.CHAOS)
    yield url
    # The killed worker's unacknowledged message must not outlive the test.
    redis_databases.delete_keys(url, chaos_key_prefix)


@pytest.fixture
def sender(chaos_redis_url, chaos_key_prefix) -> Iterator[Celery]:
    """This process's side of the broker (see test_celery_worker.sender)."""
    app = Celery("arcrm-chaos-sender", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = chaos_redis_url
    app.conf.broker_transport_options = redis_databases.transport_options(chaos_key_prefix)
    with app:
        yield app


@pytest.fixture
def fleet(spawn) -> Iterator[list[Spawned]]:
    """The processes a test starts, all stopped at the end, failure or not:
    SIGTERM to every one at once, then SIGKILL to whatever is left of them."""
    started: list[Spawned] = []
    yield started
    for process in started:
        if process.popen.poll() is None:
            process.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20  # a warm shutdown finishes the batch in hand (a few seconds)
    for process in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        process.kill_session()


def _smtp_client_ports(process: Spawned, smtp_port: int) -> set[int]:
    """Local ports of the SMTP connections the process (or its pool children) holds open."""
    inodes = set()
    for pid in process.session_pids():
        with contextlib.suppress(OSError):  # exited while we looked
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                if state == "01" and int(remote.rpartition(":")[2], 16) == smtp_port and inode in inodes:
                    ports.add(int(local.rpartition(":")[2], 16))
    return ports


_TASK_EVENT = re.compile(r"Task (\S+)\[([0-9a-f-]+)\] (received|succeeded|failed|raised|retry)")


def _tasks(process: Spawned, name: str) -> dict[str, list[str]]:
    """Task id → what the worker's log says happened to it, for tasks of one name."""
    seen: dict[str, list[str]] = {}
    for task, task_id, event in _TASK_EVENT.findall(process.output()):
        if task == name:
            seen.setdefault(task_id, []).append(event)
    return seen


def _while_progressing(condition, *, signs, message: str):
    """Poll until `condition()` is truthy, as wait_for does, but give up only
    once `signs()` (what the workers are seen doing) has not changed for
    STALLED_FOR seconds: a loaded machine is slow, not stuck."""
    seen, since = signs(), time.monotonic()
    while not (result := condition()):
        if (now := signs()) != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since > STALLED_FOR:
            pytest.fail(f"gave up after {STALLED_FOR} s without progress: {message}")
        time.sleep(0.5)
    return result


def _busy(process: Spawned) -> bool:
    """Whether the worker has a task received and not yet finished."""
    return any(
        events == ["received"]
        for name in ("collections.deliver_actions", "collections.start_dunning_run",
                     "collections.sweep_planned_actions")
        for events in _tasks(process, name).values()
    )


# --- the accounts ---------------------------------------------------------------


class _Plan(NamedTuple):
    segment: str
    invoices: list[tuple[dt.date, Decimal, bool]]  # due date, amount, paid
    due_today: bool


def _accounts(*, on: dt.date) -> tuple[dict[int, str], set[int]]:
    """ACCOUNTS customers owing one to three invoices, whose oldest reaches the
    first step of their segment's ladder (an e-mail) exactly on `on`; and decoys
    that must get nothing on `on`. Returns (customer id → address of the e-mail
    it is due, decoy ids)."""
    first = {segment: ladder.steps[0] for segment, ladder in ladders().items()}
    for segment in SEGMENTS:  # the premise of the test, should someone retune the default ladders
        assert first[segment].action == StepAction.EMAIL and first[segment].policy.auto_send, segment
    collector = User.objects.create_user("chaos-collector", email="carla@example.test")

    def due(segment: str, *, later: int = 0) -> dt.date:
        """The due date of an invoice whose segment's first step falls on `on`, or `later` days later."""
        return on - dt.timedelta(days=first[segment].day_offset) + dt.timedelta(days=later)

    plans = []
    for n in range(ACCOUNTS):
        segment = SEGMENTS[n % len(SEGMENTS)]
        # The oldest invoice sets the step; younger ones are listed if overdue by then.
        invoices = [(due(segment, later=k), Decimal(100 + n + k), False) for k in range(1 + n % 3)]
        plans.append(_Plan(segment, invoices, True))
    for n in range(DECOYS_PER_KIND):
        segment = SEGMENTS[n % len(SEGMENTS)]
        plans += [
            _Plan(segment, [(due(segment, later=1), Decimal(500), False)], False),  # a day short
            _Plan(Segment.PROMPT, [(due(Segment.PROMPT), Decimal("10.00"), False)], False),  # < EUR 25
            _Plan(Segment.PROMPT, [(due(Segment.PROMPT), Decimal(500), True)], False),  # paid
        ]

    customers = Customer.objects.bulk_create(
        Customer(account_number=f"CH{n:05d}", name=f"Chaos {n}", segment=plan.segment, collector=collector,
                 customer_since=dt.date(2020, 1, 1))
        for n, plan in enumerate(plans)
    )
    Contact.objects.bulk_create(
        Contact(customer=customer, name=f"AP Clerk {n}", role=ContactRole.AP, email=f"ap{n:04d}@chaos.test",
                reminder_channel=ReminderChannel.EMAIL, is_primary_billing=True)
        for n, customer in enumerate(customers)
    )
    Invoice.objects.bulk_create(
        Invoice(number=f"CH-{n:05d}-{k}", customer=customer, issue_date=due - dt.timedelta(days=30),
                due_date=due, currency="EUR", total_amount=amount,
                open_amount=Decimal("0.00") if paid else amount,
                status=InvoiceStatus.PAID if paid else InvoiceStatus.OPEN,
                settled_on=on - dt.timedelta(days=1) if paid else None)
        for n, (customer, plan) in enumerate(zip(customers, plans, strict=True))
        for k, (due, amount, paid) in enumerate(plan.invoices)
    )
    expected = {
        customer.pk: f"ap{n:04d}@chaos.test"
        for n, (customer, plan) in enumerate(zip(customers, plans, strict=True)) if plan.due_today
    }
    return expected, {c.pk for c in customers} - set(expected)


# --- the test ---------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    victim: str
    smtp_ports: set[int]  # its SMTP session(s) at the kill
    signalled_at: float  # time.monotonic() just before the SIGKILL was sent
    at: float  # time.monotonic() just after
    received_before: int
    unfinished_batches: list[str]


def _reply_lost_with_the_worker(copies: list[Received], kill: Kill) -> bool:
    """Whether these copies of one e-mail are the duplicate no SMTP client can
    prevent: the first from the killed worker's session, accepted by the server
    only after the SIGKILL was sent (so its "250" went to a dead process) and
    within the server's own delay of it (so the e-mail was in the server's hands
    at the kill: a later acceptance on a port reused by a new session does not
    pass), the second from the survivor's resend."""
    first, *others = sorted(copies, key=lambda r: r.at)
    return (
        len(others) == 1
        and first.peer_port in kill.smtp_ports
        and 0 <= first.at - kill.signalled_at <= 2 * SMTP_DELAY
        and others[0].peer_port not in kill.smtp_ports
    )


def _kill_mid_batch(workers: dict[str, Spawned], mailbox: _SlowMailbox, smtp_port: int) -> Kill:
    """SIGKILL a worker once KILL_AFTER e-mails have arrived, at a moment it holds
    an SMTP session open (so it is in the middle of a delivery batch).

    A random pause first: an e-mail's arrival is what starts the count, so
    without it the kill would land at the same point of a delivery every time.
    """
    deadline = time.monotonic() + 180  # 10 to 15 s on a quiet machine
    while mailbox.count() < KILL_AFTER:
        assert time.monotonic() < deadline, f"only {mailbox.count()} e-mails after three minutes"
        time.sleep(0.01)
    time.sleep(random.uniform(0, 2 * SMTP_DELAY))
    while True:
        assert time.monotonic() < deadline, "no worker held an SMTP session"
        for name in random.sample(sorted(workers), len(workers)):
            if ports := _smtp_client_ports(workers[name], smtp_port):
                process = workers[name]
                signalled_at = time.monotonic()
                os.killpg(process.pid, signal.SIGKILL)  # the main process and its pool child at once
                at, received = time.monotonic(), mailbox.count()
                process.popen.wait(timeout=10)
                unfinished = [
                    task_id for task_id, events in _tasks(process, "collections.deliver_actions").items()
                    if events == ["received"]
                ]
                return Kill(name, ports, signalled_at, at, received, unfinished)
        time.sleep(0.005)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.django_db(transaction=True)
def test_two_beats_two_workers_and_a_killed_worker_send_every_due_e_mail_exactly_once(
    slow_smtp, chaos_redis_url, chaos_key_prefix, sender, spawn, fleet, wait_for, tmp_path
):
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL: the workers cannot see an in-memory SQLite test database")
    controller, mailbox = slow_smtp
    t0 = time.monotonic()

    def clock() -> str:
        return f"{time.monotonic() - t0:5.1f} s"

    base_env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "EMAIL_BACKEND")}
    base_env.update(
        DATABASE_URL=_test_database_url(),
        REDIS_URL=chaos_redis_url,
        SECRET_KEY=base_env.get("SECRET_KEY") or "test-only-key",
        DJANGO_SETTINGS_MODULE="arcrm.settings",
        TIME_ZONE="UTC",
        EMAIL_HOST=controller.hostname,
        EMAIL_PORT=str(controller.port),
        EMAIL_TIMEOUT="10",
        **redis_databases.worker_env(chaos_key_prefix),
    )

    def start(name: str, *args: str, **env: str) -> Spawned:
        var_dir = tmp_path / name  # its own beat schedule file and media folder
        var_dir.mkdir()
        process = spawn("-m", "celery", "-A", "tests.worker_app", *args, "-l", "info",
                        env={**base_env, **env, "ARCRM_VAR_DIR": str(var_dir)}, name=name)
        fleet.append(process)
        return process

    def running(process: Spawned) -> None:
        assert process.popen.poll() is None, f"{process.log_path.name} exited:\n{process.output()[-3000:]}"

    workers = {
        name: start(name, "worker", "--concurrency", "1", "-n", f"{name}@%h",
                    "--without-mingle", "--without-gossip")
        for name in ("worker-a", "worker-b")
    }

    def workers_up() -> bool:
        for process in workers.values():
            running(process)
        nodes = [f"{name}@{socket.gethostname()}" for name in workers]
        return len(sender.control.ping(destination=nodes, timeout=1)) == len(nodes)

    wait_for(workers_up, timeout=60, message="both workers to answer a ping")

    # Both beats fire the nightly run at the first whole minute they can be
    # ready for (crontab counts in minutes); the run is for that minute's date,
    # the task's default, and the accounts are due on it.
    fire_at = (dt.datetime.now(dt.UTC) + BEAT_LEAD).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    run_date = fire_at.date()
    expected, decoys = _accounts(on=run_date)
    beats = [
        start(name, "beat", DUNNING_RUN_AT=f"{fire_at:%H:%M}",
              # Half a day away: a behaviour refresh would re-segment the accounts,
              # and the commitments check has no business in this run either.
              BEHAVIOUR_REFRESH_AT=f"{fire_at + dt.timedelta(hours=12):%H:%M}",
              COMMITMENTS_CHECK_AT=f"{fire_at + dt.timedelta(hours=12):%H:%M}")
        for name in ("beat-1", "beat-2")
    ]

    def beats_up() -> bool:
        for process in beats:
            running(process)
        return all("beat: Starting" in process.output() for process in beats)

    wait_for(beats_up, timeout=30, message="both beats to start")
    assert dt.datetime.now(dt.UTC) < fire_at, "the beats started too late for the minute they fire at"
    print(f"{clock()}  {len(expected)} accounts due an e-mail on {run_date}, {len(decoys)} decoys; "
          f"workers and beats up; the beats fire at {fire_at:%H:%M:%S} UTC")

    # --- both beats fire; both workers plan, sweep and deliver ---
    run = wait_for(
        lambda: DunningRun.objects.filter(run_date=run_date, planned_at__isnull=False).first(),
        timeout=(fire_at - dt.datetime.now(dt.UTC)).total_seconds() + 30,
        message="the beats to start the nightly run and a worker to plan it",
    )
    planned_at = time.monotonic()
    print(f"{clock()}  run planned: {run.actions.count()} actions")

    kill = _kill_mid_batch(workers, mailbox, controller.port)
    survivor_name = next(name for name in workers if name != kill.victim)
    survivor = workers[survivor_name]
    undelivered = DunningAction.objects.filter(run=run, status=ActionStatus.PLANNED).count()
    print(f"{clock()}  SIGKILL to {kill.victim} {kill.at - planned_at:.1f} s into delivery, in a batch, "
          f"SMTP session on port {sorted(kill.smtp_ports)}: {kill.received_before} of {len(expected)} "
          f"e-mails received, {undelivered} actions still planned")

    # --- the run is repeated: it re-enqueues whatever is still planned ---
    # The killed worker's batch stays unacknowledged in Redis for the visibility
    # timeout (an hour), so only a sweep gets it delivered within the test.
    repeat = sender.send_task("collections.start_dunning_run", kwargs={"run_date": run_date.isoformat()})

    def progress() -> tuple[int, int]:
        """E-mails received and lines the survivor logged: it is still at work."""
        return mailbox.count(), len(survivor.output())

    # It takes the repeat once it has delivered the batches queued before it.
    _while_progressing(
        lambda: "succeeded" in _tasks(survivor, "collections.start_dunning_run").get(repeat.id, []),
        signs=progress, message="the surviving worker to repeat the run",
    )
    swept = re.findall(r"dunning run \S+ planned: \{'planned': (\d+)", survivor.output()) or ["?"]
    print(f"{clock()}  run repeated by {survivor_name}: {swept[-1]} actions still planned for its sweep")
    queue = redis.Redis.from_url(chaos_redis_url)

    def drained() -> bool:
        """Nothing queued and nothing in hand, twice in a row: between a message
        leaving the queue and the worker logging it, both look empty."""
        running(survivor)
        for _ in range(2):
            if queue.llen(f"{chaos_key_prefix}celery") or _busy(survivor):
                return False
            time.sleep(0.5)
        return True

    def pending() -> int:
        return DunningAction.objects.filter(
            run=run, status__in=[ActionStatus.PLANNED, ActionStatus.SENDING]
        ).count()

    _while_progressing(drained, signs=progress, message="the surviving worker to deliver what is left")
    if left := pending():
        # The design's safety net; the repeated run's own sweep should make it unnecessary.
        print(f"{clock()}  {left} actions still planned after the repeated run: sweeping")
        sender.send_task("collections.sweep_planned_actions", args=[run.pk])
        _while_progressing(lambda: pending() == 0 and drained(), signs=progress,
                           message="the sweep to deliver the rest")
    queue.close()
    delivered_at = time.monotonic()

    # Stop every process before counting: nothing may arrive afterwards.
    for process in fleet:
        process.popen.send_signal(signal.SIGTERM)
    for process in fleet:
        process.popen.wait(timeout=20)
    received = mailbox.received
    after = len(received) - kill.received_before
    print(f"{clock()}  all delivered {delivered_at - kill.at:.1f} s after the kill: {len(received)} e-mails "
          f"received, {kill.received_before} before the kill and {after} after")
    copies = {mid: n for mid, n in Counter(r.message_id for r in received).items() if n > 1}
    reply_lost = {mid for mid in copies if _reply_lost_with_the_worker(
        [r for r in received if r.message_id == mid], kill
    )}
    for mid in copies:
        for r in (r for r in received if r.message_id == mid):
            print(f"{'REPLY LOST WITH THE WORKER' if mid in reply_lost else 'DUPLICATE'} {mid}: "
                  f"accepted {r.at - kill.signalled_at:+.3f} s from the SIGKILL, from port {r.peer_port}"
                  f"{' (the killed worker)' if r.peer_port in kill.smtp_ports else ''}")

    # --- it really was chaos: two beats fired, a worker died mid-batch ---
    for beat in beats:
        assert "Sending due task nightly-dunning-run" in beat.output(), beat.output()[-3000:]
    # Two beats and the repeated run: three start tasks. One may be in both
    # workers' logs: retried (the database slow to answer under load) or handed
    # back by the killed worker (acks late), and taken by the other.
    starts = [_tasks(w, "collections.start_dunning_run") for w in workers.values()]
    assert len(set().union(*starts)) == 3, starts
    assert 0 < kill.received_before < len(expected)
    assert kill.unfinished_batches, workers[kill.victim].output()[-3000:]  # it died in a batch

    # --- zero duplicate actions, zero eligible accounts missed ---
    actions = list(DunningAction.objects.select_related("step"))
    assert list(DunningAction.objects.values("cycle", "step").annotate(n=Count("pk")).filter(n__gt=1)) == []
    assert sorted(a.customer_id for a in actions) == sorted(expected)  # one each, none for a decoy
    assert Counter(a.status for a in actions) == {ActionStatus.DONE: len(expected)}
    assert {(a.step.position, a.step.action, a.channel) for a in actions} == {
        (1, StepAction.EMAIL, Channel.EMAIL)
    }
    assert {a.customer_id: a.recipient_address for a in actions} == expected
    # One timeline entry per action: a rolled-back attempt leaves none behind.
    events = TimelineEvent.objects.filter(subject_type=ContentType.objects.get_for_model(DunningAction))
    assert Counter(events.values_list("subject_id", flat=True)) == Counter(a.pk for a in actions)

    # --- zero duplicate e-mails ---
    assert {mid: n for mid, n in copies.items() if mid not in reply_lost} == {}, (
        f"e-mails received more than once: {copies} (see the output)"
    )
    assert len(reply_lost) <= 1  # one SMTP session, one e-mail in the server's hands at the kill
    assert {r.message_id for r in received} == {message_id(a.pk) for a in actions}
    # Every account's address once: the one copy the window above allows is
    # the same message (its Message-ID), so each message counts once.
    one_of_each = {r.message_id: r for r in received}.values()
    assert Counter(address for r in one_of_each for address in r.recipients) == Counter(expected.values())
