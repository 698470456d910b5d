# Hashed, expiring API tokens; the database cache table the throttles share when no Redis cache
# is configured (createcachetable is idempotent and does nothing for a Redis cache); and the
# plaintext tokens of rest_framework.authtoken are dropped.

import django.db.models.deletion
from django.conf import settings
from django.core.management import call_command
from django.db import migrations, models


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key_hash", models.CharField(max_length=64, unique=True)),
                ("prefix", models.CharField(max_length=12)),
                ("label", models.CharField(blank=True, max_length=80)),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("expires_at", models.DateTimeField()),
                ("last_used", models.DateTimeField(blank=True, null=True)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                ("session_hash", models.CharField(blank=True, db_index=True, max_length=64)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_tokens",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created"],
                "indexes": [
                    models.Index(fields=["user", "revoked_at"], name="portal_apit_user_id_1c5812_idx")
                ],
            },
        ),
        migrations.RunPython(create_cache_table, migrations.RunPython.noop, elidable=False),
        # rest_framework.authtoken is gone: its table held every token in plaintext. Tokens there
        # were never-expiring credentials; nothing reads them any more, so nothing is kept.
        migrations.RunSQL("DROP TABLE IF EXISTS authtoken_token", migrations.RunSQL.noop, elidable=False),
    ]
