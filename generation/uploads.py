"""Upload size cap enforced while the request body streams in.

Django's parser feeds each chunk through the handlers in order; this one counts bytes and stops
the upload as soon as the cap is crossed, so no more than the cap is ever buffered or written
to a temporary file (which the parser then deletes). The view learns why from the request.
A reverse proxy should also cap the body size (docs/deploy.md) so the rest is not even sent.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

FLAG = "_synthgate_upload_too_large"


class CappedUploadHandler(FileUploadHandler):
    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.received = 0

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.SYNTHGATE_MAX_UPLOAD_BYTES:
            if self.request is not None:
                setattr(self.request, FLAG, True)
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def upload_was_too_large(request: Any) -> bool:
    """True when CappedUploadHandler stopped this request's upload (Django or DRF request)."""
    django_request = getattr(request, "_request", request)
    return bool(getattr(django_request, FLAG, False))
