"""The project's Celery app for the workers and beats the tests start
(`celery -A tests.worker_app ...`): as in production, but with every broker
key under the prefix the test gives in TEST_BROKER_KEY_PREFIX.

Test runs share a Redis server (two checkouts, CI beside a developer), and
each starts workers on the same database numbers: without a prefix of its
own, a run's worker would take another run's messages, and its clean-up
would delete them."""

import json
import os
import sys
from pathlib import Path

from django.conf import settings

from arcrm.celery import app

# Set before the app reads its configuration, which then keeps it.
app.conf.broker_transport_options = {
    **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    "global_keyprefix": os.environ["TEST_BROKER_KEY_PREFIX"],
}


# What a render needs from WeasyPrint and Pillow (see rendering.renderer_load).
RENDERER_MODULES = ("weasyprint", "weasyprint.text.fonts", "weasyprint.urls", "PIL.PngImagePlugin")


@app.task(name="tests.renderer_modules_at_start")
def renderer_modules_at_start(path: str) -> None:
    """Write to `path` the renderer's modules this process had loaded when
    the task began (the worker's first task: what it had before any task)."""
    loaded = {name: name in sys.modules for name in RENDERER_MODULES}
    loaded["weasyprint.HTML"] = hasattr(sys.modules.get("weasyprint"), "HTML")  # imported whole
    written = Path(f"{path}.partial")
    written.write_text(json.dumps(loaded))
    written.rename(path)  # the test never reads half a file
