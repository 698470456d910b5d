from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared primitives (roles, errors, template tags); no models."""

    name = "core"
