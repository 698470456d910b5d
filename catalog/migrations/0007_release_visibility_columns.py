# Visibility read from the release row (issue 16): `access_level` and `discoverable` fixed at
# publication from the tier's controls, and `requester` set for request-origin releases too. The
# backfill copies them from each release's request (or, for a study's release, its own controls).

from django.db import migrations, models


def _visibility(controls):
    controls = controls or {}
    level = controls.get("access_level")
    return str(level) if level else "", controls.get("discoverable") is not False


def backfill(apps, schema_editor):
    Release = apps.get_model("catalog", "Release")
    rows = Release.objects.select_related("request", "request__requester").iterator(chunk_size=500)
    changed = []
    for release in rows:
        if release.request_id is not None:
            controls = release.request.tier_controls
            release.requester_id = release.request.requester_id
            release.requester_name = release.request.requester.username
        else:
            controls = release.controls
        release.access_level, release.discoverable = _visibility(controls)
        changed.append(release)
        if len(changed) >= 500:
            Release.objects.bulk_update(
                changed, ["access_level", "discoverable", "requester", "requester_name"]
            )
            changed = []
    if changed:
        Release.objects.bulk_update(changed, ["access_level", "discoverable", "requester", "requester_name"])


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0006_release_origin"),
        ("approvals", "0009_request_kind_target"),
    ]

    operations = [
        migrations.AddField(
            model_name="release",
            name="access_level",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.AddField(
            model_name="release",
            name="discoverable",
            field=models.BooleanField(default=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
