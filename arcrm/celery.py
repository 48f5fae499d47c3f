import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arcrm.settings")

app = Celery("arcrm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@worker_process_init.connect
def renderer_load_at_start(**_) -> None:
    """WeasyPrint imported as the worker starts, never inside a task, where
    the task's time limit could strike mid-import (see rendering.renderer_load).

    worker_init: in the worker's main process, before its pool processes
    fork, so they start with it and a task's first letter does not wait for
    it. worker_process_init: a pool process started afresh rather than
    forked (platforms that spawn); in a forked one it is already there."""
    from ar_collections.rendering import renderer_load  # the models need Django set up, done by now

    renderer_load()
