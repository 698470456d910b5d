"""Reads of generation requests and policy versions, scoped to what each user may see."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Model, Prefetch, Q, QuerySet
from django.utils import timezone

from approvals import rules
from approvals.choices import OverrideStatus, RequestKind, RequestStatus, RetryStatus, TierLevel
from approvals.models import (
    CandidateRun,
    Decision,
    GateOverride,
    GenerationAttempt,
    GenerationRequest,
    PolicyVersion,
    PrivacyRetry,
)
from approvals.workflow import TRANSITIONS
from core.ids import parse_uuid
from core.roles import AUDIT_READERS, REVIEWS_REQUESTS, SEES_EVERY_REQUEST, Role, has_role
from generation.models import SynthesisJob
from generation.selectors import datasets_visible_to
from validation.gate import PRIVACY, PRIVACY_CHECK_NAMES


def requests_visible_to(*, user: Any) -> QuerySet[GenerationRequest]:
    """Requesters see their own drafts; their team sees the rest; oversight roles see all filed."""
    base = GenerationRequest.objects.select_related("dataset", "requester", "job", "team")
    if has_role(user, *SEES_EVERY_REQUEST):
        return base.filter(Q(requester=user) | ~Q(status=RequestStatus.DRAFT))
    if has_role(user, Role.DATA_SCIENTIST):
        team_filed = (
            Q(team_id=user.team_id) & ~Q(status=RequestStatus.DRAFT) if user.team_id else Q(pk__in=[])
        )
        return base.filter(Q(requester=user) | team_filed)
    return base.none()


# Where listed_requests puts each relation it fetches for a page: plain lists on the row (Prefetch's
# to_attr), read through listed_rows. Filling the related managers' caches instead cost a related
# queryset cloned and filtered per row and relation (229 per page of 50), the largest part of
# GET /api/v1/requests/'s CPU (docs/benchmarks.md, issue 16); a list needs no queryset per row.
LISTED_ATTRS = {
    "decisions": "listed_decisions",
    "attempts": "listed_attempts",
    "candidates": "listed_candidates",  # on each listed attempt
    "gate_overrides": "listed_gate_overrides",
    "privacy_retries": "listed_privacy_retries",
}


# A request's job's JSON that no list shows (the API list and the pages alike).
_JOB_UNREAD = ("job__metadata", "job__receipt", "job__columns")


def listed_requests(queryset: QuerySet[GenerationRequest]) -> QuerySet[GenerationRequest]:
    """`queryset` with every related row a listed request's per-row fields read (quorum, actions,
    attempts and their gate reports, retries, overrides, release) fetched at once, so a list costs
    the same number of queries for 3 requests as for 300 (test_request_list_queries.py). The rows
    land in plain lists (LISTED_ATTRS, each in its model's order): read them with listed_rows.

    For lists only: a request a service goes on to change must not carry these (they would be
    read instead of the database), which is why requests_visible_to does not."""
    # The large JSON a list never shows (a release's metrics alone is ~36 KB) stays in the
    # database: decoding it was most of the API list's CPU (bench/pages.py profile).
    unread_job = _JOB_UNREAD
    attempts = LISTED_ATTRS["attempts"]
    return (
        queryset.select_related("release")
        .defer("release__metrics", "release__receipt", "release__privacy", "release__columns", *unread_job)
        .prefetch_related(
            Prefetch("decisions", queryset=Decision.objects.all(), to_attr=LISTED_ATTRS["decisions"]),
            Prefetch(
                "attempts",
                queryset=GenerationAttempt.objects.select_related("job__validation").defer(
                    "job__validation__metrics", *unread_job
                ),
                to_attr=attempts,
            ),
            Prefetch(
                f"{attempts}__candidates",
                queryset=CandidateRun.objects.select_related("job__validation").defer(
                    "job__validation__metrics", *unread_job
                ),
                to_attr=LISTED_ATTRS["candidates"],
            ),
            Prefetch(
                "gate_overrides", queryset=GateOverride.objects.all(), to_attr=LISTED_ATTRS["gate_overrides"]
            ),
            Prefetch(
                "privacy_retries",
                queryset=PrivacyRetry.objects.all(),
                to_attr=LISTED_ATTRS["privacy_retries"],
            ),
        )
    )


def listed_rows(instance: Model, related: str) -> list[Any]:
    """The rows of `instance`'s `related` manager (a key of LISTED_ATTRS), in the model's order:
    what a list fetched for it, else a query (a single request)."""
    rows = _prefetched(instance, related)
    return list(getattr(instance, related).all()) if rows is None else rows


# What the request list and review queue pages never show of a row: the filed columns, options and
# candidates, the tier's reasons, the free text, and the joined job's and dataset's JSON. Loading
# them cost a JSON decode each, about 8 per row (bench/pages.py profile, issue 16).
_PAGE_UNREAD = (
    "columns",
    "candidates",
    "options",
    "tier_reasons",
    "purpose",
    "intended_use",
    "conditions",
    *_JOB_UNREAD,
    "job__options",
    "dataset__description",
    "dataset__risk_columns",
    "dataset__population_reason",
)


def paged_requests(queryset: QuerySet[GenerationRequest]) -> QuerySet[GenerationRequest]:
    """`queryset` (of requests_visible_to) without the fields a list page never shows; for the
    request list and review queue pages only (reading a deferred field would cost a query per
    row, which their query-count tests would see)."""
    return queryset.defer(*_PAGE_UNREAD)


def requests_listed_for(*, user: Any) -> QuerySet[GenerationRequest]:
    """requests_visible_to, ready to list (listed_requests)."""
    return listed_requests(requests_visible_to(user=user))


# --- Search, filters and ordering of request lists (page, review queue and API alike) -----------

REQUEST_ORDERINGS = ("-created_at", "created_at", "title", "-title")
DEFAULT_REQUEST_ORDERING = "-created_at"
_MAX_QUERY = 200  # a search longer than any title is a mistake, not a search


@dataclass(frozen=True)
class RequestFilters:
    """Validated list filters. Empty values filter nothing; `ordering` "" keeps the queryset's own
    order (the review queue is longest-waiting first whatever is asked)."""

    q: str = ""
    status: str = ""
    tier: str = ""
    kind: str = ""
    dataset: uuid.UUID | None = None
    team: int | None = None
    created_from: date | None = None
    created_to: date | None = None
    ordering: str = DEFAULT_REQUEST_ORDERING

    @property
    def active(self) -> bool:
        return any(
            (self.q, self.status, self.tier, self.kind, self.dataset, self.team)
            + (self.created_from, self.created_to)
        )


def request_filters_from(params: Mapping[str, Any]) -> tuple[RequestFilters, dict[str, str]]:
    """The filters in query parameters `params` (q, status, tier, kind, dataset, team, created_from,
    created_to as YYYY-MM-DD, ordering), and a message per parameter that was not understood
    (those are left out: the API answers 400 with them, a page says so and lists without them)."""
    errors: dict[str, str] = {}
    found: dict[str, Any] = {}

    def text(name: str) -> str:
        value = params.get(name) or ""
        return value.strip() if isinstance(value, str) else ""

    if q := text("q"):
        if len(q) > _MAX_QUERY:
            errors["q"] = f"Search for at most {_MAX_QUERY} characters."
        else:
            found["q"] = q
    choice_filters = (
        ("status", RequestStatus.values),
        ("tier", TierLevel.values),
        ("kind", RequestKind.values),
    )
    for name, choices in choice_filters:
        if value := text(name):
            if value in choices:
                found[name] = value
            else:
                errors[name] = f"Unknown {name} {value[:40]!r}; one of: {', '.join(choices)}."
    if value := text("dataset"):
        if (dataset_id := parse_uuid(value)) is None:
            errors["dataset"] = "dataset is a dataset id."
        else:
            found["dataset"] = dataset_id
    if value := text("team"):
        if value.isdigit() and len(value) < 12:
            found["team"] = int(value)
        else:
            errors["team"] = "team is a team id."
    for name in ("created_from", "created_to"):
        if value := text(name):
            try:
                found[name] = date.fromisoformat(value)
            except ValueError:
                errors[name] = f"{name} is a date, YYYY-MM-DD."
    if value := text("ordering"):
        if value in REQUEST_ORDERINGS:
            found["ordering"] = value
        else:
            errors["ordering"] = f"ordering is one of: {', '.join(REQUEST_ORDERINGS)}."
    return RequestFilters(**found), errors


def _start_of(day: date) -> datetime:
    # A range on created_at itself (not created_at__date) so the (field, created_at) indexes serve it.
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def requests_filtered(
    queryset: QuerySet[GenerationRequest], filters: RequestFilters
) -> QuerySet[GenerationRequest]:
    """`queryset` narrowed by `filters`, never widened: every filter is a further .filter() on what
    the caller may already see (requests_visible_to or review_queue). The status, tier, dataset and
    team filters with the date range and ordering are served by GenerationRequest's indexes; the
    text search is a case-insensitive match on title and purpose."""
    if filters.q:
        queryset = queryset.filter(Q(title__icontains=filters.q) | Q(purpose__icontains=filters.q))
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.tier:
        queryset = queryset.filter(tier_level=filters.tier)
    if filters.kind:
        queryset = queryset.filter(kind=filters.kind)
    if filters.dataset:
        queryset = queryset.filter(dataset_id=filters.dataset)
    if filters.team is not None:
        queryset = queryset.filter(team_id=filters.team)
    if filters.created_from:
        queryset = queryset.filter(created_at__gte=_start_of(filters.created_from))
    if filters.created_to:  # inclusive: everything before the next day starts
        queryset = queryset.filter(created_at__lt=_start_of(filters.created_to + timedelta(days=1)))
    if filters.ordering:
        # The primary key breaks ties, so a page boundary never repeats or skips a row.
        tie = "-pk" if filters.ordering.startswith("-") else "pk"
        queryset = queryset.order_by(filters.ordering, tie)
    return queryset


@dataclass(frozen=True)
class FilterChoices:
    """What a list page's filter form offers: (value, label) pairs, one query each."""

    statuses: list[tuple[str, str]]
    tiers: list[tuple[str, str]]
    datasets: list[tuple[str, str]]
    teams: list[tuple[str, str]]


def request_filter_choices(*, user: Any) -> FilterChoices:
    """The datasets `user` may see, and the teams when `user` sees every team's requests (a data
    scientist sees only their own team's, so a team choice would only ever narrow to nothing)."""
    datasets = [
        (str(pk), f"{name} v{version}")
        for pk, name, version in datasets_visible_to(user=user)
        .order_by("name", "version")
        .values_list("pk", "name", "version")
    ]
    teams: list[tuple[str, str]] = []
    if has_role(user, *SEES_EVERY_REQUEST):
        # The team model is portal's, above this layer: reached through the request's own field.
        team_model = GenerationRequest._meta.get_field("team").related_model
        teams = [
            (str(pk), name)
            for pk, name in team_model._default_manager.order_by("name").values_list("pk", "name")
        ]
    return FilterChoices(
        statuses=list(RequestStatus.choices), tiers=list(TierLevel.choices), datasets=datasets, teams=teams
    )


def overrides_awaiting_officer(*, user: Any) -> QuerySet[GateOverride]:
    """Pending gate overrides of requests `user` may see, neither filed nor proposed by them (the
    four-eyes rules in approvals.rules refuse those anyway), oldest first."""
    others = requests_visible_to(user=user).exclude(requester=user)
    return (
        GateOverride.objects.filter(status=OverrideStatus.PENDING, request__in=others)
        .exclude(proposed_by=user)
        .select_related("request")
        .order_by("proposed_at", "pk")
    )


def retries_awaiting_officer(*, user: Any) -> QuerySet[PrivacyRetry]:
    """Pending privacy retries of requests `user` may see and did not file, oldest first."""
    others = requests_visible_to(user=user).exclude(requester=user)
    return (
        PrivacyRetry.objects.filter(status=RetryStatus.PENDING, request__in=others)
        .select_related("request")
        .order_by("asked_at", "pk")
    )


def review_queue(*, user: Any) -> QuerySet[GenerationRequest]:
    """Requests this reviewer may decide, longest-waiting first; never the reviewer's own.

    Privacy officers see every request in review; data stewards only those whose tier names
    them as approvers (high tier in the shipped policy).
    """
    if not has_role(user, *REVIEWS_REQUESTS):
        return GenerationRequest.objects.none()
    queue = (
        requests_visible_to(user=user)
        .filter(status=RequestStatus.IN_REVIEW)
        .exclude(requester=user)
        .prefetch_related(
            Prefetch("decisions", queryset=Decision.objects.all(), to_attr=LISTED_ATTRS["decisions"])
        )
        .order_by("submitted_at", "pk")
    )
    if user.role != Role.PRIVACY_OFFICER:
        # Role names do not overlap, so a text match on the JSON list is exact enough and works
        # on SQLite and PostgreSQL alike.
        queue = queue.filter(tier_controls__approver_roles__icontains=f'"{user.role}"')
    return queue


def policy_versions_for(*, user: Any) -> QuerySet[PolicyVersion]:
    """Policy versions: administrators manage them; auditors and privacy officers read them."""
    if not has_role(user, *AUDIT_READERS):
        return PolicyVersion.objects.none()
    return PolicyVersion.objects.select_related("published_by").order_by("-number")


@dataclass(frozen=True)
class CycleTime:
    request_id: Any
    title: str
    tier: str
    outcome: str
    submitted_at: Any
    decided_at: Any
    hours: float


def cycle_times_for(*, user: Any) -> list[CycleTime]:
    """Approval cycle time of every reviewed request: first submission to the reviewers' final
    decision (approve or reject). Requests the policy prohibited never reach a reviewer and are
    left out. Oversight roles only."""
    if not has_role(user, *AUDIT_READERS):
        return []
    rows = (
        requests_visible_to(user=user)
        .filter(first_submitted_at__isnull=False, decided_at__isnull=False)
        .exclude(tier_level=TierLevel.PROHIBITED)
        .order_by("first_submitted_at")
        .values_list("pk", "title", "tier_level", "status", "first_submitted_at", "decided_at")
    )
    return [
        CycleTime(
            pk, title, tier, _outcome(status), start, end, max(0.0, (end - start).total_seconds() / 3600)
        )
        for pk, title, tier, status, start, end in rows
        if start is not None and end is not None  # always, by the filter above; said for mypy
    ]


def _outcome(status: str) -> str:
    return "rejected" if status == RequestStatus.REJECTED else "approved"


def waiting_for_review(*, user: Any) -> QuerySet[GenerationRequest]:
    """Requests still in review (for the evidence page's open-items count)."""
    if not has_role(user, *AUDIT_READERS):
        return GenerationRequest.objects.none()
    return requests_visible_to(user=user).filter(status=RequestStatus.IN_REVIEW).order_by("submitted_at")


# --- Attempts: what the latest one failed -------------------------------------------------------


def failed_privacy_checks(checks: list[dict[str, Any]]) -> list[str]:
    """Names of the privacy checks that failed. A check that could not run (`not_run`) is not an
    attack that worked: a new seed cannot make it run, so it does not count here."""
    return [
        str(c.get("name"))
        for c in checks
        if not c.get("passed")
        and c.get("status") != "not_run"
        and (c.get("name") in PRIVACY_CHECK_NAMES or c.get("kind") == PRIVACY)
    ]


def _prefetched(instance: Model, related: str) -> list[Any] | None:
    """The rows of `instance`'s `related` manager when a list fetched them (listed_requests' plain
    list, or a prefetch_related elsewhere), else None (then the caller queries, as for a single
    request)."""
    rows = instance.__dict__.get(LISTED_ATTRS[related])
    if rows is not None:
        return rows
    cache = getattr(instance, "_prefetched_objects_cache", {})
    return list(cache[related]) if related in cache else None


def latest_attempt_jobs(request: GenerationRequest) -> list[SynthesisJob]:
    """The jobs of the request's latest attempt (one, or one per bake-off candidate)."""
    attempts = _prefetched(request, "attempts")
    if attempts is None:
        attempt = request.attempts.order_by("-number").first()
    else:
        attempt = max(attempts, key=lambda a: a.number, default=None)
    if attempt is None:
        return []
    runs = _prefetched(attempt, "candidates")
    if runs is None:
        runs = list(attempt.candidates.select_related("job"))
    return [run.job for run in runs] if runs else [attempt.job]


def latest_privacy_failures(request: GenerationRequest) -> list[str]:
    """The privacy checks the latest attempt failed (over all its candidates), in gate order."""
    failed: list[str] = []
    for job in latest_attempt_jobs(request):
        report = getattr(job, "validation", None)
        if report is not None:
            failed += [name for name in failed_privacy_checks(report.checks) if name not in failed]
    return failed


def approved_retry_waiting(request: GenerationRequest) -> PrivacyRetry | None:
    """An officer's approved retry of the latest failed attempt that no new attempt used yet (what
    lets an upload request's next file through after a privacy failure)."""
    retries = _prefetched(request, "privacy_retries")
    if retries is None:
        return PrivacyRetry.objects.filter(
            request=request,
            failed_job__in=latest_attempt_jobs(request),
            status=RetryStatus.APPROVED,
            retry_job__isnull=True,
        ).first()
    # The prefetched rows come in the model's order, so the first match is the query's first.
    failed_jobs = {job.pk for job in latest_attempt_jobs(request)}
    return next(
        (
            r
            for r in retries
            if r.failed_job_id in failed_jobs and r.status == RetryStatus.APPROVED and r.retry_job_id is None
        ),
        None,
    )


# --- What a user may do with a request ----------------------------------------------------------

# Statuses in which attempts, retries and overrides can be acted on; elsewhere their facts are not
# read (every rule that needs them is refused by the transition table first).
_ATTEMPT_STATUSES = frozenset(TRANSITIONS["upload"])


def request_facts_for(request: GenerationRequest) -> rules.RequestFacts:
    """What approvals.rules needs counted about `request`, read once for every action."""
    decided = frozenset(
        d.reviewer_id for d in listed_rows(request, "decisions") if d.review_round == request.review_round
    )
    cancel_requested = request.job is not None and request.job.cancel_requested
    if request.status not in _ATTEMPT_STATUSES:
        return rules.RequestFacts(request, decided_this_round=decided, job_cancel_requested=cancel_requested)
    # A list prefetched these (listed_requests): read its rows; a single request queries them.
    overrides = _prefetched(request, "gate_overrides")
    if overrides is None:
        pending = request.gate_overrides.filter(status=OverrideStatus.PENDING).first()
    else:
        pending = next((o for o in overrides if o.status == OverrideStatus.PENDING), None)
    retries = _prefetched(request, "privacy_retries")
    if retries is None:
        retry_pending = request.privacy_retries.filter(status=RetryStatus.PENDING).exists()
    else:
        retry_pending = any(r.status == RetryStatus.PENDING for r in retries)
    attempts = _prefetched(request, "attempts")
    failed = latest_privacy_failures(request) if request.status in TRANSITIONS["regenerate"] else []
    return rules.RequestFacts(
        request,
        attempts_used=request.attempts.count() if attempts is None else len(attempts),
        override_pending=pending is not None,
        override_proposer_id=pending.proposed_by_id if pending else None,
        privacy_failures=tuple(failed),
        retry_pending=retry_pending,
        approved_retry_waiting=bool(failed) and approved_retry_waiting(request) is not None,
        job_cancel_requested=cancel_requested,
        decided_this_round=decided,
    )


@dataclass(frozen=True)
class Action:
    """One action's answer for one user: allowed when there is no refusal reason."""

    reason: str

    @property
    def allowed(self) -> bool:
        return not self.reason

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class RequestActions:
    """Every action on a request, as this user may take it now (approvals.rules decides each)."""

    can_edit: Action
    can_submit: Action
    can_withdraw: Action
    can_stop_job: Action
    can_decide: Action
    can_regenerate: Action
    can_upload: Action
    can_ask_retry: Action
    can_decide_retry: Action
    can_propose_override: Action
    can_decide_override: Action
    can_choose_candidate: Action

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {
            f.name: {"allowed": getattr(self, f.name).allowed, "reason": getattr(self, f.name).reason}
            for f in fields(self)
        }


_RULES = {
    "can_edit": rules.edit_refusal,
    "can_submit": rules.submit_refusal,
    "can_withdraw": rules.withdraw_refusal,
    "can_stop_job": rules.stop_job_refusal,
    "can_decide": rules.decide_refusal,
    "can_regenerate": rules.regenerate_refusal,
    "can_upload": rules.upload_refusal,
    "can_ask_retry": rules.retry_ask_refusal,
    "can_decide_retry": rules.retry_decide_refusal,
    "can_propose_override": rules.override_propose_refusal,
    "can_decide_override": rules.override_decide_refusal,
    "can_choose_candidate": rules.choose_refusal,
}


def request_actions_for(
    *, user: Any, request: GenerationRequest, facts: rules.RequestFacts | None = None
) -> RequestActions:
    """What `user` may do with `request` now, each with the reason when not: the one answer the
    request page and the API's `actions` render (the services raise from the same rules)."""
    facts = facts or request_facts_for(request)
    return RequestActions(**{name: Action(rule(user, facts)) for name, rule in _RULES.items()})


def request_action_answers(*, user: Any, request: GenerationRequest) -> dict[str, dict[str, Any]]:
    """request_actions_for(user=user, request=request).as_dict(), without the Action objects in
    between: the API renders this for every row of a page (50 rows, 12 rules each)."""
    facts = request_facts_for(request)
    answers: dict[str, dict[str, Any]] = {}
    for name, rule in _RULES.items():
        reason = rule(user, facts)
        answers[name] = {"allowed": not reason, "reason": reason}
    return answers
