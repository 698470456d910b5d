"""Synthetic outputs were stored in plaintext before; encrypt the existing ones in place.

In place (same path, same plaintext SHA-256), so every release and receipt that points at a file
stays valid. Files already encrypted are skipped, so running it twice changes nothing.
"""

from django.db import migrations


def encrypt_existing_outputs(apps, schema_editor):  # type: ignore[no-untyped-def]
    from generation.storage import encrypt_legacy_file

    job_model = apps.get_model("generation", "SynthesisJob")
    for relative in (
        job_model.objects.exclude(output_path="").values_list("output_path", flat=True).iterator()
    ):
        encrypt_legacy_file(relative)


class Migration(migrations.Migration):
    dependencies = [("generation", "0005_dp_ledger_entity_population")]

    operations = [migrations.RunPython(encrypt_existing_outputs, migrations.RunPython.noop, elidable=True)]
