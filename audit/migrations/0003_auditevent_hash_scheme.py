"""Record which scheme hashed each audit row; rows that exist now were hashed unkeyed.

Existing rows get scheme 1 (plain SHA-256) and keep their hashes: rehashing them under the new
key would launder any tampering that happened before keying. New rows default to scheme 2
(HMAC-SHA256 under SYNTHGATE_AUDIT_KEY). Verification accepts scheme 1 only as the chain's
prefix, and the first keyed row's HMAC covers the last unkeyed hash, which pins that prefix.

On SQLite, adding a column with a default rebuilds the table, which drops its triggers, so the
append-only triggers of 0002 are put back afterwards (and after a rollback rebuilds it again).
"""

import importlib

from django.db import migrations, models

TRIGGERS = importlib.import_module("audit.migrations.0002_append_only_triggers")
CHOICES = [(1, "SHA-256 (unkeyed, before keying)"), (2, "HMAC-SHA256 (keyed)")]


def restore_sqlite_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for sql in TRIGGERS.SQLITE_DROP + TRIGGERS.SQLITE:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_triggers")]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, restore_sqlite_triggers),
        migrations.AddField(
            model_name="auditevent",
            name="hash_scheme",
            field=models.PositiveSmallIntegerField(choices=CHOICES, default=1),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="hash_scheme",
            field=models.PositiveSmallIntegerField(choices=CHOICES, default=2),
        ),
        migrations.RunPython(restore_sqlite_triggers, migrations.RunPython.noop),
    ]
