"""Governance dashboard reads: the figures officers and auditors bring to a board.

Each selector runs a constant number of queries (aggregated in the database with
annotate/values/Count, or one bounded fetch aggregated here), whatever the number of requests,
decisions or downloads, and returns plain rows the page both charts and tabulates. Oversight
roles only (core.roles.AUDIT_READERS); everyone else gets empty results.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMonth, TruncWeek
from django.utils import timezone

from approvals.charts import tier_summary
from approvals.models import Decision, GateOverride
from approvals.selectors import CycleTime, cycle_times_for
from audit.models import Outcome
from audit.selectors import audit_events_visible_to
from catalog.selectors import releases_visible_to
from core.ids import parse_uuid
from core.roles import AUDIT_READERS, has_role
from generation.choices import JobState
from generation.models import BudgetLedgerEntry, LedgerKind, SourceDataset, micro_to_epsilon
from validation.models import ValidationReport

# The default window: half a year of weeks, long enough to see a trend, short enough that the
# gate-failure fetch (stored check lists, aggregated in Python) stays small.
DEFAULT_WEEKS = 26
# The longest window a viewer may ask for; it bounds the same fetch.
MAX_PERIOD_DAYS = 731
DOWNLOAD_ACTION = "release.download"
# Override rows listed under the chart: the exceptions a board asks about, newest first.
OVERRIDE_LIST_LIMIT = 50


@dataclass(frozen=True)
class Period:
    """Calendar days `start` to `end`, both included, in the portal's time zone."""

    start: date
    end: date

    @property
    def since(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.start, time.min))

    @property
    def until(self) -> datetime:
        """The first moment after the period (an exclusive bound)."""
        return timezone.make_aware(datetime.combine(self.end + timedelta(days=1), time.min))

    def weeks(self) -> list[date]:
        """The Monday of every week the period touches, oldest first."""
        monday = self.start - timedelta(days=self.start.weekday())
        return [monday + timedelta(weeks=i) for i in range((self.end - monday).days // 7 + 1)]

    def months(self) -> list[date]:
        """The first day of every month the period touches, oldest first."""
        months, month = [], self.start.replace(day=1)
        while month <= self.end:
            months.append(month)
            month = (month + timedelta(days=32)).replace(day=1)
        return months


def default_period(today: date | None = None) -> Period:
    end = today or timezone.localdate()
    return Period(end - timedelta(weeks=DEFAULT_WEEKS) + timedelta(days=1), end)


def _oversees(user: Any) -> bool:
    return has_role(user, *AUDIT_READERS)


def _day(moment: datetime | date) -> date:
    """The local calendar day of a truncated timestamp (databases return aware datetimes)."""
    if isinstance(moment, datetime):
        return timezone.localtime(moment).date() if timezone.is_aware(moment) else moment.date()
    return moment


@dataclass(frozen=True)
class Series:
    """Counts per bucket (week or month start) and per category, zero-filled for charting."""

    buckets: list[date]
    categories: list[str]
    counts: dict[str, list[int]]

    @property
    def total(self) -> int:
        return sum(sum(values) for values in self.counts.values())

    def rows(self) -> list[list[Any]]:
        """One row per bucket: [bucket, count per category...], for the table fallback."""
        return [
            [bucket, *(self.counts[c][i] for c in self.categories)] for i, bucket in enumerate(self.buckets)
        ]


def _series(buckets: list[date], tallies: dict[tuple[date, str], int], order: list[str]) -> Series:
    """Zero-filled counts; categories in `order` first, then any others seen, alphabetically."""
    seen = {category for _, category in tallies}
    categories = [c for c in order if c in seen] + sorted(seen - set(order))
    index = {bucket: i for i, bucket in enumerate(buckets)}
    counts = {c: [0] * len(buckets) for c in categories}
    for (bucket, category), n in tallies.items():
        if bucket in index:
            counts[category][index[bucket]] += n
    return Series(buckets, categories, counts)


# --- Approval cycle time (the review-evidence page's selector, narrowed to the period) ------------


def cycle_times_in(*, user: Any, period: Period) -> list[CycleTime]:
    """Requests decided in the period; approvals.selectors.cycle_times_for does the reading."""
    return [t for t in cycle_times_for(user=user) if period.since <= t.decided_at < period.until]


def cycle_time_by_tier(*, user: Any, period: Period) -> list[dict[str, Any]]:
    """Count, median and longest hours per tier (approvals.charts.tier_summary)."""
    return tier_summary(cycle_times_in(user=user, period=period))


# --- Decisions and gate failures per week ------------------------------------------------------


def decisions_per_week(*, user: Any, period: Period) -> Series:
    """Reviewers' decisions per week, by outcome (approve, reject, request changes)."""
    if not _oversees(user):
        return _series(period.weeks(), {}, [])
    rows = (
        Decision.objects.filter(at__gte=period.since, at__lt=period.until)
        .annotate(week=TruncWeek("at"))
        .values("week", "decision")
        .annotate(n=Count("id"))
        .order_by()
    )
    tallies = {(_day(r["week"]), r["decision"]): r["n"] for r in rows}
    return _series(period.weeks(), tallies, ["approve", "request_changes", "reject"])


def gate_failures_per_week(*, user: Any, period: Period) -> Series:
    """Checks that blocked a release, per week, by check name, over the jobs that ended
    gate_failed. Checks are stored as JSON lists, so one query fetches only the reports' dates
    and checks in the (bounded) period and the counting happens here."""
    if not _oversees(user):
        return _series(period.weeks(), {}, [])
    reports = ValidationReport.objects.filter(
        job__state=JobState.GATE_FAILED, created_at__gte=period.since, created_at__lt=period.until
    ).values_list("created_at", "checks")
    tallies: Counter[tuple[date, str]] = Counter()
    for created_at, checks in reports:
        monday = _day(created_at) - timedelta(days=_day(created_at).weekday())
        for check in checks or []:
            # `passed` is False for a failed check and for a required one that did not run:
            # both blocked the gate (validation.gate.gate_passes).
            if isinstance(check, dict) and not check.get("passed", True):
                tallies[(monday, str(check.get("name") or "unnamed"))] += 1
    return _series(period.weeks(), dict(tallies), [])


# --- Exceptions: gate overrides and access grants ----------------------------------------------


def overrides_per_month(*, user: Any, period: Period) -> Series:
    """Gate-override proposals per month (by when proposed), by their status today."""
    if not _oversees(user):
        return _series(period.months(), {}, [])
    rows = (
        GateOverride.objects.filter(proposed_at__gte=period.since, proposed_at__lt=period.until)
        .annotate(month=TruncMonth("proposed_at"))
        .values("month", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    tallies = {(_day(r["month"]), r["status"]): r["n"] for r in rows}
    return _series(period.months(), tallies, ["approved", "pending", "declined"])


def overrides_in(*, user: Any, period: Period) -> list[dict[str, Any]]:
    """The override proposals of the period, newest first (at most OVERRIDE_LIST_LIMIT)."""
    if not _oversees(user):
        return []
    rows = (
        GateOverride.objects.filter(proposed_at__gte=period.since, proposed_at__lt=period.until)
        .order_by("-proposed_at", "-pk")
        .values(
            "request_id", "request__title", "status", "failed_checks", "proposed_by_name",
            "proposed_at", "decided_by_name", "decided_at",
        )[:OVERRIDE_LIST_LIMIT]
    )  # fmt: skip
    return [dict(row) for row in rows]


def access_grants_in(*, user: Any, period: Period) -> list[dict[str, Any]] | None:
    """Access grants to releases. None: the catalog has no access-grant record yet (release
    visibility follows the request's audience), so there is nothing to count; the page says so
    rather than showing a zero that would look like a measurement."""
    return None


# --- Privacy budget and downloads --------------------------------------------------------------


@dataclass(frozen=True)
class SourceBudget:
    dataset_id: Any
    name: str
    status: str
    cap: Decimal
    spent: Decimal
    spent_in_period: Decimal

    @property
    def remaining(self) -> Decimal:
        return self.cap - self.spent

    @property
    def share(self) -> float:
        """Spent as a fraction of the cap (0 to 1)."""
        return float(self.spent / self.cap) if self.cap else 0.0


def epsilon_per_source(*, user: Any, period: Period) -> list[SourceBudget]:
    """Epsilon spent against the cap for every ledger (a source's first version: later versions
    spend from it, see SourceDataset.population), with the net spent during the period (its
    reservations less its refunds). Two queries."""
    if not _oversees(user):
        return []
    owners = SourceDataset.objects.filter(population__isnull=True).order_by("name", "version")
    in_period = (
        BudgetLedgerEntry.objects.filter(at__gte=period.since, at__lt=period.until)
        .values("dataset_id")
        .annotate(
            reserved=Sum("amount_micro", filter=Q(kind=LedgerKind.RESERVE)),
            refunded=Sum("amount_micro", filter=Q(kind=LedgerKind.REFUND)),
        )
        .order_by()
    )
    net = {r["dataset_id"]: (r["reserved"] or 0) - (r["refunded"] or 0) for r in in_period}
    return [
        SourceBudget(
            d["pk"], f"{d['name']} v{d['version']}", d["status"],
            _epsilon(d["epsilon_cap_micro"]), _epsilon(d["epsilon_spent_micro"]), _epsilon(net.get(d["pk"], 0)),
        )
        for d in owners.values("pk", "name", "version", "status", "epsilon_cap_micro", "epsilon_spent_micro")
    ]  # fmt: skip


def _epsilon(micro: int) -> Decimal:
    return micro_to_epsilon(micro) or Decimal(0)


def downloads_per_release(*, user: Any, period: Period) -> list[dict[str, Any]]:
    """Downloads per release in the period, from the audit log (every download writes one
    `release.download` row before a byte is sent): `served`, and `failed` when the stored file
    could not be read. Most downloaded first. Only releases the viewer may see are named (admins
    see only their team's releases, see SEES_EVERY_RELEASE)."""
    if not _oversees(user):
        return []
    events = (
        audit_events_visible_to(user=user)
        .filter(action=DOWNLOAD_ACTION, target_type="release", at__gte=period.since, at__lt=period.until)
        .values("target_id", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    tallies: dict[UUID, dict[str, int]] = defaultdict(lambda: {"served": 0, "failed": 0})
    for e in events:
        key = parse_uuid(e["target_id"])
        if key is not None:  # a malformed id names no release
            tallies[key]["served" if e["outcome"] == Outcome.SUCCESS else "failed"] += e["n"]
    releases = (
        releases_visible_to(user=user)
        .filter(pk__in=list(tallies))
        .values("pk", "title", "audience", "created_at")
    )
    rows = [{**r, **tallies[r["pk"]]} for r in releases]
    return sorted(rows, key=lambda r: (-r["served"], -r["failed"], r["title"]))
