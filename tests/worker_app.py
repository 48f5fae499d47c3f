"""The project's Celery app for the workers and beats the tests start
(`celery -A tests.worker_app ...`): as in production, but with every broker
key under the prefix the test gives in TEST_BROKER_KEY_PREFIX.

Test runs share a Redis server (two checkouts, CI beside a developer), and
each starts workers on the same database numbers: without a prefix of its
own, a run's worker would take another run's messages, and its clean-up
would delete them."""

import os

from django.conf import settings

from arcrm.celery import app

# Set before the app reads its configuration, which then keeps it.
app.conf.broker_transport_options = {
    **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    "global_keyprefix": os.environ["TEST_BROKER_KEY_PREFIX"],
}
