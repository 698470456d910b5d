from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The embedded SQLite database holds the audit log, request texts and user accounts:
        # owner-only on disk, like the stored files (generation.storage).
        from django.conf import settings
        from django.db.backends.signals import connection_created

        from generation.storage import sqlite_make_private, sqlite_precreate_private

        for database in settings.DATABASES.values():
            if database.get("ENGINE") == "django.db.backends.sqlite3":
                sqlite_precreate_private(database)
        connection_created.connect(sqlite_make_private, dispatch_uid="generation.sqlite_make_private")
