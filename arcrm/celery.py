import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arcrm.settings")

app = Celery("arcrm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
