"""Writes: notify people, and mark what they have read.

Inbox rows are written in the caller's transaction (an event that rolls back notifies nobody);
e-mail goes out after the commit, and a mail failure is logged, never raised into the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from notifications.models import Notification

logger = logging.getLogger(__name__)


def notify(
    *,
    recipients: Iterable[Any],
    kind: str,
    message: str,
    url: str = "",
    target_type: str = "",
    target_id: Any = "",
    dedup_key: str = "",
    email_for: Callable[[Any], tuple[str, str]] | None = None,
) -> int:
    """Put `message` in each active recipient's inbox (once per event: `dedup_key`, by default the
    kind and target) and e-mail those with an address. Returns how many people were notified now,
    so a caller never says "notified" when nobody was.

    The e-mail is `message` and the link unless `email_for(user)` gives a (subject, body); it is
    built and sent after the commit, and any failure there is logged, never raised."""
    if url and (not url.startswith("/") or url.startswith("//")):
        raise ValueError("A notification links to a page of this site: a path starting with '/'.")
    people = {user.pk: user for user in recipients if user is not None and user.is_active}
    if not people:
        return 0
    key = dedup_key or f"{kind}:{target_type}:{target_id}"
    already = set(
        Notification.objects.filter(recipient_id__in=people, dedup_key=key).values_list(
            "recipient_id", flat=True
        )
    )
    fresh = [user for pk, user in people.items() if pk not in already]
    rows = [
        Notification(
            recipient=user,
            kind=kind,
            message=message[:300],
            url=url,
            target_type=target_type,
            target_id=str(target_id),
            dedup_key=key,
        )
        for user in fresh
    ]
    # ignore_conflicts: a concurrent call for the same event is absorbed by the unique constraint.
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    addressed = [user for user in fresh if user.email]
    if addressed:
        compose = email_for or _plain_email(message, url)
        transaction.on_commit(lambda: _send_emails(addressed, kind, compose))
    return len(fresh)


def _plain_email(message: str, url: str) -> Callable[[Any], tuple[str, str]]:
    link = f"{getattr(settings, 'SYNTHGATE_BASE_URL', '').rstrip('/')}{url}" if url else ""
    body = f"{message}\n\nOpen it in SynthGate: {link}\n" if link else f"{message}\n"
    return lambda _user: (f"[SynthGate] {message}"[:150], body)


def _send_emails(users: list[Any], kind: str, compose: Callable[[Any], tuple[str, str]]) -> None:
    for user in users:
        try:
            subject, body = compose(user)
            # One message per person: recipients never see each other's addresses.
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email], fail_silently=False)
        except Exception:  # noqa: BLE001 - the event is committed; a mail outage must not undo or 500 it
            logger.exception("could not send %s notification e-mail to user %s", kind, user.pk)


def mark_read(*, user: Any, ids: Iterable[Any] | None = None) -> int:
    """Mark the user's own notifications read (all unread ones when `ids` is None). Another
    user's ids are silently not theirs to mark: the count returned says how many changed."""
    rows = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if ids is not None:
        rows = rows.filter(pk__in=[i for i in ids if str(i).isdigit()])
    return rows.update(read_at=timezone.now())
