from __future__ import annotations

from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "federation"
    verbose_name = "Federated studies"
    default_auto_field = "django.db.models.BigAutoField"
