"""The client's address, as the lockout (django-axes) and the API throttles (DRF) both see it.

`X-Forwarded-For` is written by the client first and by each proxy after: only the entries the
deployment's own proxies appended can be believed. With SYNTHGATE_TRUSTED_PROXIES = N, the client
is the N-th address from the right (the one the outermost trusted proxy saw); with 0 (the
default) the header is ignored and the TCP peer is the client. This is exactly DRF's
`NUM_PROXIES` rule, which settings set to the same number, so both count the same address.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    remote = str(request.META.get("REMOTE_ADDR") or "")
    trusted = settings.SYNTHGATE_TRUSTED_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if trusted == 0 or not forwarded:
        return remote
    addresses = [part.strip() for part in str(forwarded).split(",")]
    return addresses[-min(trusted, len(addresses))] or remote
