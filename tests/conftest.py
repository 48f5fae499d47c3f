"""Fixtures shared by the whole suite: users in each role and small builders
for customers, contacts, invoices and payments."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User

from ar_collections.models import Allocation, Invoice, InvoiceStatus, Payment
from arcrm.roles import COLLECTOR, MANAGER, VIEWER
from customers.models import Contact, ContactRole, Customer
from tests.redis_databases import delete_keys

_numbers = itertools.count(1)


def pytest_configure(config):
    """Cache keys of this run's own: a run's test database numbers its users
    from 1 again, and an earlier run's cached user 1 must not answer for this
    run's. Set before the first cache use, and for the processes tests start."""
    prefix = f"arcrm-test-{uuid.uuid4().hex[:12]}"
    os.environ["CACHE_KEY_PREFIX"] = prefix
    if "default" in settings.CACHES:
        settings.CACHES["default"]["KEY_PREFIX"] = prefix
    # The broker's keys too: what a test hands to the suite's Redis (no worker
    # of this run takes it) must not wait in the default queue, where a worker
    # of another run or a developer's `make run` on the same Redis would take
    # it and look for its rows in another database.
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        from arcrm.celery import app

        app.conf.broker_transport_options = {
            **settings.CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": f"{prefix}:",
        }


def pytest_unconfigure(config):
    """This run's broker keys go with it: nothing ever takes them."""
    from arcrm.celery import app

    prefix = app.conf.broker_transport_options.get("global_keyprefix", "")
    if prefix.startswith("arcrm-test-"):
        delete_keys(settings.CELERY_BROKER_URL, prefix)


@pytest.fixture(autouse=True)
def _no_ladders_kept(monkeypatch):
    """Each test starts with no ladders kept by the process (dunning.ladders),
    as a server just started: what a test counts must not hang on which test
    ran before it. A test of a busy page reads them once before it counts."""
    from ar_collections import dunning

    monkeypatch.setattr(dunning, "_ladders_read", None)


@pytest.fixture(autouse=True)
def _no_failures_counted(monkeypatch):
    """Each test counts failed sign-ins and API tokens afresh: the suite signs
    in from one address, far more often than the limits allow."""
    from arcrm import throttle

    monkeypatch.setattr(throttle, "KEY_PREFIX", f"throttle-{uuid.uuid4().hex[:12]}")


@pytest.fixture(autouse=True)
def _plain_static_files(settings):
    """Serve static files by their plain names: tests run without `collectstatic`,
    which the hashed-name storage used in production needs."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def _user(username: str, role: str) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def collector(db) -> User:
    return _user("carla", COLLECTOR)


@pytest.fixture
def other_collector(db) -> User:
    return _user("otto", COLLECTOR)


@pytest.fixture
def manager(db) -> User:
    return _user("maria", MANAGER)


@pytest.fixture
def other_manager(db) -> User:
    return _user("mark", MANAGER)


@pytest.fixture
def viewer(db) -> User:
    return _user("victor", VIEWER)


@pytest.fixture
def make_customer(db, collector):
    def make(**fields) -> Customer:
        n = next(_numbers)
        fields.setdefault("account_number", f"C{n:05d}")
        fields.setdefault("name", f"Customer {n}")
        fields.setdefault("collector", collector)
        fields.setdefault("customer_since", dt.date(2020, 1, 1))
        return Customer.objects.create(**fields)

    return make


@pytest.fixture
def customer(make_customer) -> Customer:
    return make_customer(name="Acme Tools", buying_reasons=["price", "delivery speed", "service"])


@pytest.fixture
def make_contact(db):
    def make(customer: Customer, **fields) -> Contact:
        n = next(_numbers)
        fields.setdefault("name", f"Contact {n}")
        fields.setdefault("role", ContactRole.AP)
        fields.setdefault("email", f"contact{n}@example.com")
        return Contact.objects.create(customer=customer, **fields)

    return make


@pytest.fixture
def make_invoice(db):
    def make(customer: Customer, *, issued: dt.date, due: dt.date | None = None,
             amount: str | Decimal = "100.00", paid_on: dt.date | None = None, **fields) -> Invoice:
        """An invoice; with paid_on, fully paid on that day by one payment."""
        amount = Decimal(amount)
        n = next(_numbers)
        invoice = Invoice.objects.create(
            number=fields.pop("number", f"INV-{n:06d}"),
            customer=customer,
            issue_date=issued,
            due_date=due or issued + dt.timedelta(days=30),
            currency=fields.pop("currency", customer.currency),
            total_amount=amount,
            open_amount=Decimal("0.00") if paid_on else amount,
            status=InvoiceStatus.PAID if paid_on else InvoiceStatus.OPEN,
            settled_on=paid_on,
            **fields,
        )
        if paid_on:
            payment = Payment.objects.create(
                customer=customer, received_on=paid_on, currency=invoice.currency, amount=amount
            )
            Allocation.objects.create(
                invoice=invoice, payment=payment, amount=amount, allocated_on=paid_on, applied_on=paid_on)
        return invoice

    return make


# --- a real browser ---------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and no calls home: this machine has no network but the loopback.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# Screenshots of the main pages, for a person to look at.
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def browser_page(live_server, settings, monkeypatch):
    """A Chromium tab (Debian's, driven by Playwright) on the live server.

    Ask for it after the fixtures that write the test's data: Playwright's sync
    API switches greenlets, and ORM calls made while it runs get a second
    database connection that nobody closes.
    """
    from playwright.sync_api import sync_playwright

    # Playwright runs an event loop in this thread; Django would otherwise
    # refuse the ORM calls a test makes while the browser is open.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # The live server speaks plain http; secure-only cookies would never come back.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing, so the browser tests cannot run. "
            "Install Debian's chromium package (`make test` does) and run them again."
        )
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900}, base_url=live_server.url)
        page.set_default_timeout(10_000)
        # A script, style or request the page's Content Security Policy
        # refused is a page broken in production: every browser test fails on one.
        refused = []
        page.on("console", lambda message: refused.append(message.text)
                if "Content Security Policy" in message.text else None)
        try:
            yield page
        finally:
            browser.close()
        assert not refused, f"the Content Security Policy refused: {refused}"
