"""Sequenced audit writes (issue 16 item 3): pending rows, and the one UPDATE the trigger allows.

In sequenced mode (SYNTHGATE_AUDIT_SEQUENCER, PostgreSQL only) a writer inserts its event without
a chain position: `seq`, `prev_hash` and `hash` are NULL, and `content_hash` is the writer's HMAC
over the row's id and content. The sequencer later links it: NULL to values in those three
columns, every other column unchanged. The PostgreSQL row trigger now lets exactly that change
through and refuses every other UPDATE and every DELETE, as before (TRUNCATE keeps its own
trigger). A linked row can therefore not be edited, re-linked or unlinked, and a pending row's
content cannot be edited, without switching the triggers off; what the hash chain and the seals
catch when someone does is in audit/tests/test_sequencer.py.

Rows that exist are linked already and keep their values. On SQLite (no sequenced mode: one
writer at a time anyway) the table rebuild drops the triggers of 0002; they are put back
unchanged, refusing every UPDATE.
"""

import importlib

from django.conf import settings
from django.db import migrations, models

TRIGGERS = importlib.import_module("audit.migrations.0002_append_only_triggers")

POSTGRES = [
    """CREATE OR REPLACE FUNCTION audit_event_link_only() RETURNS trigger AS $$
       DECLARE
         unlinked audit_auditevent;
       BEGIN
         IF TG_OP = 'UPDATE'
            AND OLD.seq IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL
            AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL THEN
           -- Linking: the new row with its chain fields cleared must be the old row, column for column.
           unlinked := NEW;
           unlinked.seq := NULL;
           unlinked.prev_hash := NULL;
           unlinked.hash := NULL;
           IF unlinked IS NOT DISTINCT FROM OLD THEN
             RETURN NEW;
           END IF;
         END IF;
         RAISE EXCEPTION 'audit events are append-only (only linking a pending event is allowed)';
       END; $$ LANGUAGE plpgsql;""",
    "DROP TRIGGER IF EXISTS audit_event_no_change ON audit_auditevent;",
    """CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_auditevent
       FOR EACH ROW EXECUTE FUNCTION audit_event_link_only();""",
]
POSTGRES_BACK = [
    "DROP TRIGGER IF EXISTS audit_event_no_change ON audit_auditevent;",
    """CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_auditevent
       FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();""",
    "DROP FUNCTION IF EXISTS audit_event_link_only();",
]


def link_only_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in POSTGRES:
            schema_editor.execute(sql)


def append_only_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in POSTGRES_BACK:
            schema_editor.execute(sql)


def restore_sqlite_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for sql in TRIGGERS.SQLITE_DROP + TRIGGERS.SQLITE:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_verification_records"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, restore_sqlite_triggers),
        migrations.AddField(
            model_name="auditevent",
            name="content_hash",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.PositiveBigIntegerField(blank=True, null=True, unique=True),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("seq__isnull", True)), fields=["id"], name="audit_event_pending"
            ),
        ),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("hash__isnull", True), ("prev_hash__isnull", True), ("seq__isnull", True)),
                    models.Q(("hash__isnull", False), ("prev_hash__isnull", False), ("seq__isnull", False)),
                    _connector="OR",
                ),
                name="audit_event_linked_or_pending",
            ),
        ),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.CheckConstraint(
                condition=models.Q(("seq__isnull", False), models.Q(("content_hash", ""), _negated=True), _connector="OR"),
                name="audit_event_pending_sealed",
            ),
        ),
        migrations.AddField(
            model_name="auditverification",
            name="oldest_pending_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="auditverification",
            name="pending",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="auditverification",
            name="pending_forged",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="auditverification",
            name="pending_overdue",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.RunPython(link_only_trigger, append_only_trigger),
        migrations.RunPython(restore_sqlite_triggers, migrations.RunPython.noop),
    ]
