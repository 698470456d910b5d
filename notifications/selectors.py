"""Reads: a user's inbox, their unread count, and who an event has notified."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet

from core.pagination import PAGE_SIZE
from notifications.models import Notification


def notifications_of(user: Any) -> QuerySet[Notification]:
    """The user's own notifications, newest first; the only way views read the inbox."""
    return Notification.objects.filter(recipient=user).order_by("-created_at", "-id")


def inbox_for(user: Any, *, page: Any = 1) -> Page:
    return Paginator(notifications_of(user), PAGE_SIZE).get_page(page)


def unread_count(user: Any) -> int:
    """One COUNT query, for the navigation badge on every page."""
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def notified_count(*, dedup_key: str) -> int:
    """How many people one event (by its dedup key) has notified, for the message a page shows."""
    return Notification.objects.filter(dedup_key=dedup_key).count()
