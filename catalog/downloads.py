"""The release file as an HTTP response, shared by the page and the API so both authorize, audit
and stream the same way."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.utils.text import slugify

from catalog.services import release_open_download
from core.roles import PortalUser


def release_file_response(*, actor: PortalUser, release_id: str) -> StreamingHttpResponse:
    """Authorize, audit, then stream the CSV, decrypted chunk by chunk. Its bytes are exactly
    those the release's `sha256` was computed over; formula-like cells were neutralised when the
    file was written (generation.csv_safety)."""
    release, opened = release_open_download(actor=actor, release_id=release_id)
    filename = f"{slugify(release.title)[:60] or 'release'}-{str(release.pk)[:8]}.csv"
    response = StreamingHttpResponse(opened.chunks, content_type="text/csv; charset=utf-8")
    response["Content-Length"] = str(opened.size)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response
