"""django-axes' database handler with one limit per account and a separate one per address.

Axes compares the larger of the per-account and per-address failure counts with a single limit.
A hospital's staff often share one NAT address, so the address limit must be higher than an
account's, or ten typos across the hospital would lock everyone out. Attempts stay in axes'
database table, so every web process counts together.
"""

from __future__ import annotations

from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.db.models import Sum


class PortalAxesHandler(AxesDatabaseHandler):
    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        # AXES_LOCKOUT_PARAMETERS is ["username", "ip_address"]: one queryset for each, in order.
        account_attempts, address_attempts = self.get_user_attempts(request, credentials)
        account = account_attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
        address = address_attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
        limit = int(settings.AXES_FAILURE_LIMIT)
        per_address = int(settings.SYNTHGATE_LOCKOUT_ADDRESS_FAILURES)
        # On the account limit's scale: address * limit // per_address reaches `limit` exactly
        # when address reaches per_address, so axes' one comparison applies both limits.
        return max(account, address * limit // per_address)
