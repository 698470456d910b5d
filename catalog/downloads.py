"""The release file as an HTTP response, shared by the page and the API so both authorize, audit
and stream the same way."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.utils.text import slugify

from catalog.models import ArtifactFormat
from catalog.services import release_open_download
from core.roles import PortalUser

# What each kind of release serves: (file extension, media type).
_FILE_TYPES = {
    ArtifactFormat.CSV: ("csv", "text/csv; charset=utf-8"),
    # skops has no registered media type: an opaque binary, never rendered by a browser.
    ArtifactFormat.SKOPS: ("skops", "application/octet-stream"),
    # A federated study's model: numpy arrays (np.load with allow_pickle=False).
    ArtifactFormat.NPZ: ("npz", "application/octet-stream"),
}


def release_file_response(*, actor: PortalUser, release_id: str) -> StreamingHttpResponse:
    """Authorize, audit, then stream the release's file (a table's CSV, a model's .skops or a federated model's .npz),
    decrypted chunk by chunk, under the same access rules for both kinds. Its bytes are exactly
    those the release's `sha256` was computed over; formula-like cells of a CSV were neutralised
    when the file was written (generation.csv_safety)."""
    release, opened = release_open_download(actor=actor, release_id=release_id)
    extension, media_type = _FILE_TYPES[ArtifactFormat(release.artifact_format)]
    filename = f"{slugify(release.title)[:60] or 'release'}-{str(release.pk)[:8]}.{extension}"
    response = StreamingHttpResponse(opened.chunks, content_type=media_type)
    response["Content-Length"] = str(opened.size)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response
