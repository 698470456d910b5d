"""Scheme 3 (issue 16 item 3b): the database builds each row's canonical text, verification hashes it.

`canonical` is a stored generated column over the row's own columns (audit.hashing.
linked_canonical_sql), `tag` the keyed tag on a scheme-3 row's SHA-256 link, and new rows default
to scheme 3. Rows that exist keep their scheme and hashes; the partial index `audit_event_legacy`
finds where they end.

On PostgreSQL the sequencer's trigger (migration 0005) now also lets the tag go from NULL to a value when a
row is linked, and ignores `canonical` (the database computes it after BEFORE triggers run). On
SQLite adding a stored generated column rebuilds the table, which drops the triggers of 0002; they
are put back unchanged.
"""

import importlib

from django.conf import settings
from django.db import migrations, models

import audit.hashing

TRIGGERS = importlib.import_module("audit.migrations.0002_append_only_triggers")
SEQUENCED = importlib.import_module("audit.migrations.0005_sequenced_audit_writes")


PG_LINK_ONLY = [
    """CREATE OR REPLACE FUNCTION audit_event_link_only() RETURNS trigger AS $$
       DECLARE
         unlinked audit_auditevent;
       BEGIN
         IF TG_OP = 'UPDATE'
            AND OLD.seq IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL AND OLD.tag IS NULL
            AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL THEN
           -- Linking: the new row with its chain fields cleared must be the old row, column for
           -- column. `canonical` is generated after BEFORE triggers run, so it is not compared.
           unlinked := NEW;
           unlinked.seq := NULL;
           unlinked.prev_hash := NULL;
           unlinked.hash := NULL;
           unlinked.tag := NULL;
           unlinked.canonical := OLD.canonical;
           IF unlinked IS NOT DISTINCT FROM OLD THEN
             RETURN NEW;
           END IF;
         END IF;
         RAISE EXCEPTION 'audit events are append-only (only linking a pending event is allowed)';
       END; $$ LANGUAGE plpgsql;""",
]


def _vendor(statements_by_vendor):
    def apply(apps, schema_editor):
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_sequenced_audit_writes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Reversed last: the rebuilds below drop SQLite's triggers on the way back too.
        migrations.RunPython(migrations.RunPython.noop, _vendor({"sqlite": TRIGGERS.SQLITE_DROP + TRIGGERS.SQLITE})),
        migrations.AddField(
            model_name="auditevent",
            name="tag",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="canonical",
            field=models.GeneratedField(
                db_persist=True, expression=audit.hashing.LinkedCanonical(), output_field=models.TextField()
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="hash_scheme",
            field=models.PositiveSmallIntegerField(
                choices=[
                    (1, "SHA-256 (unkeyed, before keying)"),
                    (2, "HMAC-SHA256 (keyed)"),
                    (3, "SHA-256 link over the database's canonical text, HMAC-SHA256 tag (keyed)"),
                ],
                default=3,
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("hash_scheme__lt", 3)), fields=["seq"], name="audit_event_legacy"
            ),
        ),
        migrations.RunPython(
            _vendor({"postgresql": PG_LINK_ONLY, "sqlite": TRIGGERS.SQLITE_DROP + TRIGGERS.SQLITE}),
            _vendor({"postgresql": SEQUENCED.POSTGRES[:1]}),
        ),
    ]
