from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Audit of sign-in events and token revocation on credential changes (see the module).
        from portal import auth_signals

        auth_signals.connect()
