"""The Celery application. Broker and task policy come from Django settings (CELERY_*)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("synthgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
