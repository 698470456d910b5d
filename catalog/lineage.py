"""A release's lineage: source version -> classification sign-off -> request -> policy version and
tier -> decisions -> ledger entries -> jobs (bake-off candidates) -> attempts -> release ->
downloads, grants and withdrawal, as `{"nodes": [...], "edges": [...]}` (the page draws it:
catalog.lineage_views).

Labels carry names, ids, counts and statuses only, never source values or free text (comments,
justifications). Each node links to the page where it can be seen, and only when this user may
open that page. Who downloaded the file is shown to oversight roles; everyone else sees a count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from approvals.choices import DecisionKind, OverrideStatus, RetryStatus
from approvals.models import CandidateRun, GateOverride, GenerationAttempt, PrivacyRetry
from approvals.selectors import requests_visible_to
from audit.models import AuditEvent, Outcome
from catalog.models import Release
from catalog.selectors import releases_visible_to
from core.errors import NotFound
from core.roles import AUDIT_READERS, SEES_EVERY_RELEASE, PortalUser, has_role
from generation.models import MICRO, BudgetLedgerEntry, ClassificationVersion, SynthesisJob
from generation.selectors import datasets_visible_to
from generation.synthesizers import is_dp_synthesizer

# The stages, left to right: the picture draws one column per stage present, the table lists
# nodes in this order (then by time).
STAGES = (
    "source",
    "signoff",
    "request",
    "study",
    "policy",
    "tier",
    "decision",
    "ledger",
    "job",
    "candidate",
    "attempt",
    "override",
    "release",
    "download",
    "grant",
    "withdrawal",
)
STAGE_LABELS = {
    "source": "Source version",
    "signoff": "Classification sign-off",
    "request": "Request",
    "study": "Federated study",
    "policy": "Policy version",
    "tier": "Risk tier",
    "decision": "Decision",
    "ledger": "Budget ledger",
    "job": "Job",
    "candidate": "Bake-off candidate",
    "attempt": "Attempt",
    "override": "Gate override",
    "release": "Release",
    "download": "Downloads",
    "grant": "Access grant",
    "withdrawal": "Withdrawal",
}
DOWNLOAD_ACTION = "release.download"


@dataclass
class _Lineage:
    """What the builders read (fetched once) and the graph they add to."""

    release: Release
    user: PortalUser
    sees_request: bool
    sees_dataset: bool
    attempts: list[GenerationAttempt]
    runs: list[CandidateRun]
    jobs: list[SynthesisJob]
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    tier_of_round: dict[int, str] = field(default_factory=dict)
    approved_overrides: list[str] = field(default_factory=list)
    # Jobs a privacy-retry approval (not the review) let run: job id -> that decision's node.
    retry_of_job: dict[Any, str] = field(default_factory=dict)

    def node(self, node_id: str, kind: str, label: str, at: datetime | None, url: str | None) -> str:
        self.nodes[node_id] = {"id": node_id, "kind": kind, "label": label, "at": at, "url": url}
        return node_id

    def edge(self, source: str, target: str) -> None:
        if (source, target) not in self.edges:
            self.edges.append((source, target))

    def ids(self, kind: str) -> list[str]:
        return [n["id"] for n in self.nodes.values() if n["kind"] == kind]

    def request_url(self) -> str | None:
        return (
            reverse("approvals:request-detail", args=[self.release.request_id]) if self.sees_request else None
        )


def release_lineage(*, release: Release, user: PortalUser) -> dict[str, Any]:
    """The graph of `release` as `user` may see it; NotFound when the release is not visible."""
    if not releases_visible_to(user=user).filter(pk=release.pk).exists():
        raise NotFound("No such release.")
    lineage = _load(release, user)
    for build in STUDY_NODE_BUILDERS if release.is_from_study else NODE_BUILDERS:
        build(lineage)
    order = {kind: i for i, kind in enumerate(STAGES)}
    nodes = sorted(
        lineage.nodes.values(),
        key=lambda n: (order.get(n["kind"], len(STAGES)), n["at"] is None, n["at"] or datetime.min, n["id"]),
    )
    edges = [{"from": a, "to": b} for a, b in lineage.edges if a in lineage.nodes and b in lineage.nodes]
    return {"nodes": nodes, "edges": edges}


def _load(release: Release, user: PortalUser) -> _Lineage:
    if release.is_from_study:  # no request, attempts or jobs: its sites' datasets and its study
        return _Lineage(release, user, False, False, attempts=[], runs=[], jobs=[])
    request = release.request
    attempts = list(
        GenerationAttempt.objects.filter(request=request).select_related("job").order_by("number")
    )
    runs = list(
        CandidateRun.objects.filter(attempt__in=attempts).select_related("job").order_by("attempt", "index")
    )
    jobs = {a.job_id: a.job for a in attempts} | {r.job_id: r.job for r in runs}
    jobs.setdefault(release.job_id, release.job)
    return _Lineage(
        release=release,
        user=user,
        sees_request=requests_visible_to(user=user).filter(pk=request.pk).exists(),
        sees_dataset=datasets_visible_to(user=user).filter(pk=release.dataset_id).exists(),
        attempts=attempts,
        runs=runs,
        jobs=sorted(jobs.values(), key=lambda j: (j.created_at, str(j.pk))),
    )


# --- Node builders, in stage order (each adds its nodes and the edges into them) -----------------


def _source(g: _Lineage) -> None:
    dataset = g.release.dataset
    url = reverse("generation:dataset-detail", args=[dataset.pk]) if g.sees_dataset else None
    label = f"{dataset.name} v{dataset.version} (SHA-256 {dataset.sha256[:12]}…)"
    g.node(f"dataset:{dataset.pk}", "source", label, dataset.created_at, url)


def _signoffs(g: _Lineage) -> None:
    """The signed-off classification versions the jobs ran against (normally one)."""
    dataset = g.release.dataset
    numbers = {j.classification_version for j in g.jobs if j.classification_version}
    url = reverse("generation:dataset-detail", args=[dataset.pk]) if g.sees_dataset else None
    for version in ClassificationVersion.objects.filter(dataset=dataset, number__in=numbers):
        label = f"Classification v{version.number} signed off by {version.signed_off_name}"
        node = g.node(f"signoff:{version.pk}", "signoff", label, version.signed_off_at, url)
        g.edge(f"dataset:{dataset.pk}", node)


def _request(g: _Lineage) -> None:
    request = g.release.request
    label = f"Request “{request.title}” by {request.requester.username} ({request.get_status_display()})"
    at = request.first_submitted_at or request.created_at
    node = g.node(f"request:{request.pk}", "request", label, at, g.request_url())
    for parent in g.ids("signoff") or g.ids("source"):
        g.edge(parent, node)


def _policy_and_tier(g: _Lineage) -> None:
    """Each submission's assessment: the published policy version that made it, then its tier."""
    request_node = f"request:{g.release.request_id}"
    policy_reader = has_role(g.user, *AUDIT_READERS)  # the policy pages are theirs
    for assessment in g.release.request.assessments.select_related("policy").order_by("review_round"):
        policy = assessment.policy
        url = (
            reverse("portal:policy-version", args=[policy.number])
            if policy_reader and policy.number
            else None
        )
        policy_node = g.node(
            f"policy:{policy.pk}",
            "policy",
            f"Risk policy v{policy.number}",
            policy.decided_at or policy.published_at,
            url,
        )
        fired = len(assessment.fired or [])
        label = f"Tier {assessment.level}, round {assessment.review_round} ({fired} rule{'s' * (fired != 1)} fired)"
        tier_node = g.node(f"tier:{assessment.pk}", "tier", label, assessment.at, g.request_url())
        g.tier_of_round[assessment.review_round] = tier_node
        g.edge(request_node, policy_node)
        g.edge(policy_node, tier_node)


def _decisions(g: _Lineage) -> None:
    for decision in g.release.request.decisions.order_by("at", "pk"):
        who = f" by {decision.reviewer_name}" if g.sees_request else ""
        label = f"{decision.get_decision_display()}{who} ({decision.reviewer_role_label}), round {decision.review_round}"
        node = g.node(f"decision:{decision.pk}", "decision", label, decision.at, g.request_url())
        g.edge(g.tier_of_round.get(decision.review_round, f"request:{g.release.request_id}"), node)


def _retries(g: _Lineage) -> None:
    """Approved privacy retries: an officer's decision that let a new attempt run after a failed
    privacy check (the reason and comment are free text and stay out)."""
    job_ids = [j.pk for j in g.jobs]
    retries = PrivacyRetry.objects.filter(retry_job__in=job_ids, status=RetryStatus.APPROVED)
    for retry in retries.order_by("asked_at", "pk"):
        who = f" by {retry.decided_by_name}" if g.sees_request and retry.decided_by_name else ""
        label = f"Privacy retry approved{who}"
        node = g.node(
            f"retry:{retry.pk}", "decision", label, retry.decided_at or retry.asked_at, g.request_url()
        )
        g.edge(f"job:{retry.failed_job_id}", node)
        g.retry_of_job[retry.retry_job_id] = node


def _authorizing(g: _Lineage) -> list[str]:
    """What let the jobs run: the approvals of the last round (else the last tier, the request)."""
    request = g.release.request
    approvals = [
        f"decision:{d.pk}"
        for d in request.decisions.filter(review_round=request.review_round, decision=DecisionKind.APPROVE)
    ]
    return approvals or g.ids("tier")[-1:] or [f"request:{request.pk}"]


def _ledger_and_jobs(g: _Lineage) -> None:
    approval = _authorizing(g)
    entries = BudgetLedgerEntry.objects.filter(job__in=[j.pk for j in g.jobs]).order_by("at", "id")
    by_job: dict[Any, list[str]] = {}
    url = reverse("generation:dataset-budget", args=[g.release.dataset_id]) if g.sees_dataset else None
    for entry in entries:
        label = f"{entry.get_kind_display()} epsilon {_number(entry.amount)}"
        if entry.delta_atto:
            label += f", delta {entry.delta:.2e}"
        node = g.node(f"ledger:{entry.pk}", "ledger", label, entry.at, url)
        by_job.setdefault(entry.job_id, []).append(node)
        for parent in _parents_of_job(g, entry.job_id, approval):
            g.edge(parent, node)
    for job in g.jobs:
        job_node = g.node(
            f"job:{job.pk}", "job", _job_label(job), job.finished_at or job.created_at, _job_url(g, job)
        )
        for parent in by_job.get(job.pk) or _parents_of_job(g, job.pk, approval):
            g.edge(parent, job_node)


def _parents_of_job(g: _Lineage, job_id: Any, approval: list[str]) -> list[str]:
    retry = g.retry_of_job.get(job_id)
    return [retry] if retry else approval


def _job_label(job: SynthesisJob) -> str:
    epsilon = (
        f", epsilon {_number(job.epsilon)}"
        if job.epsilon is not None and is_dp_synthesizer(job.synthesizer)
        else ""
    )
    return f"Job {str(job.pk)[:8]}: {job.synthesizer}{epsilon} ({job.get_state_display()})"


def _job_url(g: _Lineage, job: SynthesisJob) -> str | None:
    if not g.sees_request or not hasattr(job, "validation"):
        return None
    return reverse("catalog:job-report", args=[job.pk])


def _candidates(g: _Lineage) -> None:
    for run in g.runs:
        verdict = "chosen" if run.chosen else "not chosen"
        gate = getattr(run.job, "validation", None)
        passed = "" if gate is None else (", passed the gate" if gate.passed else ", failed the gate")
        recommended = ", recommended" if run.recommended else ""
        label = f"Candidate {run.index + 1}: {run.synthesizer} ({verdict}{recommended}{passed})"
        at = run.job.finished_at or run.job.created_at
        node = g.node(f"candidate:{run.pk}", "candidate", label, at, g.request_url())
        g.edge(f"job:{run.job_id}", node)


def _attempts(g: _Lineage) -> None:
    run_of_job = {r.job_id: r for r in g.runs}
    for attempt in g.attempts:
        label = (
            f"Attempt {attempt.number}: {attempt.get_source_display()}, started by {attempt.started_by_name}"
        )
        node = g.node(f"attempt:{attempt.pk}", "attempt", label, attempt.at, g.request_url())
        runs = [r for r in g.runs if r.attempt_id == attempt.pk]
        for run in runs:
            g.edge(f"candidate:{run.pk}", node)
        if attempt.job_id not in run_of_job:
            g.edge(f"job:{attempt.job_id}", node)


def _overrides(g: _Lineage) -> None:
    """Gate overrides of the lineage's jobs (who proposed, who decided; never the justification)."""
    for override in GateOverride.objects.filter(job__in=[j.pk for j in g.jobs]).order_by("proposed_at", "pk"):
        decided = f", decided by {override.decided_by_name}" if override.decided_by_name else ""
        label = f"Override proposed by {override.proposed_by_name}{decided} ({override.get_status_display()})"
        at = override.decided_at or override.proposed_at
        node = g.node(f"override:{override.pk}", "override", label, at, g.request_url())
        g.edge(_job_home(g, override.job_id), node)
        if override.status == OverrideStatus.APPROVED and override.job_id == g.release.job_id:
            g.approved_overrides.append(node)


def _release(g: _Lineage) -> None:
    release = g.release
    dp = f", epsilon {_number(release.epsilon)}" if release.is_dp and release.epsilon is not None else ""
    what = (
        f"DP model ({release.synthesizer})"
        if release.is_model
        else f"{release.rows} rows, {release.synthesizer}"
    )
    label = f"Release “{release.title}”: {what}{dp}"
    url = reverse("catalog:release-detail", args=[release.pk])
    node = g.node(f"release:{release.pk}", "release", label, release.created_at, url)
    for parent in g.approved_overrides or [_job_home(g, release.job_id)]:
        g.edge(parent, node)


# --- A federated study's model: site datasets -> study -> each site's ledger debit -> release --------


def _study_sources(g: _Lineage) -> None:
    """Each site's dataset version (linked when this user may open it)."""
    ids = [str(s.get("dataset")) for s in g.release.sources or [] if isinstance(s, dict)]
    visible = {
        str(pk) for pk in datasets_visible_to(user=g.user).filter(pk__in=ids).values_list("pk", flat=True)
    }
    for source in g.release.sources or []:
        dataset = str(source.get("dataset"))
        url = reverse("generation:dataset-detail", args=[dataset]) if dataset in visible else None
        label = f"{source.get('site')}: {source.get('dataset_name')} v{source.get('dataset_version')}"
        g.node(f"dataset:{dataset}", "source", label, None, url)


def _study(g: _Lineage) -> None:
    card = g.release.card or {}
    rounds = card.get("rounds_completed")
    label = f"Federated study “{card.get('title') or g.release.title}” by {g.release.requester_name}"
    label += f" ({len(g.release.sources or [])} sites, {rounds} round{'s' * (rounds != 1)})"
    url = reverse("federation:study-detail", kwargs={"study_id": g.release.origin_ref})
    node = g.node(f"study:{g.release.origin_ref}", "study", label, None, url)
    for parent in g.ids("source"):
        g.edge(parent, node)


def _study_ledger(g: _Lineage) -> None:
    """What each site's ledger was debited for the study (per record, the ledger's unit)."""
    study_node = f"study:{g.release.origin_ref}"
    for source in g.release.sources or []:
        micro = source.get("epsilon_debited_micro")
        if micro is None:
            continue
        epsilon = _number(Decimal(int(micro)) / MICRO)
        label = f"{source.get('site')}: debited epsilon {epsilon} per record"
        node = g.node(f"ledger:{source.get('site')}", "ledger", label, None, None)
        g.edge(study_node, node)


def _study_release(g: _Lineage) -> None:
    release = g.release
    label = f"Release “{release.title}”: federated DP model ({release.synthesizer}), epsilon {_number(release.epsilon)}"
    url = reverse("catalog:release-detail", args=[release.pk])
    node = g.node(f"release:{release.pk}", "release", label, release.created_at, url)
    for parent in g.ids("ledger") or [f"study:{release.origin_ref}"]:
        g.edge(parent, node)


def _job_home(g: _Lineage, job_id: Any) -> str:
    """The node a job's path continues from: its attempt (or its own node outside any attempt)."""
    for run in g.runs:
        if run.job_id == job_id:
            return f"attempt:{run.attempt_id}"
    for attempt in g.attempts:
        if attempt.job_id == job_id:
            return f"attempt:{attempt.pk}"
    return f"job:{job_id}"


def _downloads(g: _Lineage) -> None:
    """One node per download (who and when) for oversight roles; a single count for everyone else,
    since who downloaded what is an audit fact, not a catalog one."""
    events = AuditEvent.objects.filter(
        action=DOWNLOAD_ACTION, target_type="release", target_id=str(g.release.pk), outcome=Outcome.SUCCESS
    ).order_by("seq")
    release_node = f"release:{g.release.pk}"
    if has_role(g.user, *SEES_EVERY_RELEASE, *AUDIT_READERS):
        url = _audit_url(g) if has_role(g.user, *AUDIT_READERS) else None
        for event in events:
            node = g.node(
                f"download:{event.seq}", "download", f"Downloaded by {event.actor_name}", event.at, url
            )
            g.edge(release_node, node)
        return
    count = events.count()
    if count:
        label = f"Downloaded {count} time{'s' * (count != 1)}"
        g.edge(release_node, g.node(f"downloads:{g.release.pk}", "download", label, None, None))


def _audit_url(g: _Lineage) -> str:
    query = urlencode({"target": f"release:{g.release.pk}", "action": DOWNLOAD_ACTION})
    return f"{reverse('audit:event-list')}?{query}"


def _grants(g: _Lineage) -> None:
    """Access grants, when the catalog records them (a related manager `grants` on Release)."""
    manager = getattr(g.release, "grants", None)
    if manager is None or not hasattr(manager, "all"):
        return
    for grant in manager.all():
        who = _first(grant, "grantee_name", "team_name", "granted_to_name")
        status = _first(grant, "status")
        label = "Access grant" + (f" to {who}" if who else "") + (f" ({status})" if status else "")
        at = _first(grant, "granted_at", "created_at", "at")
        node = g.node(f"grant:{grant.pk}", "grant", label, at or None, None)
        g.edge(f"release:{g.release.pk}", node)


def _withdrawal(g: _Lineage) -> None:
    """The withdrawal, when the catalog records one (`withdrawn_at` on Release)."""
    withdrawn_at = getattr(g.release, "withdrawn_at", None)
    if withdrawn_at is None:
        return
    who = _first(g.release, "withdrawn_by_name")
    label = "Withdrawn" + (f" by {who}" if who else "")
    node = g.node(f"withdrawal:{g.release.pk}", "withdrawal", label, withdrawn_at, None)
    g.edge(f"release:{g.release.pk}", node)


def _first(obj: object, *names: str) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value not in (None, ""):
            return value
    return None


# Extend here (a new kind also goes into STAGES and STAGE_LABELS); order matters only in that a
# builder may link to nodes the ones before it added.
NODE_BUILDERS: list[Callable[[_Lineage], None]] = [
    _source,
    _signoffs,
    _request,
    _policy_and_tier,
    _decisions,
    _retries,
    _ledger_and_jobs,
    _candidates,
    _attempts,
    _overrides,
    _release,
    _downloads,
    _grants,
    _withdrawal,
]

STUDY_NODE_BUILDERS: list[Callable[[_Lineage], None]] = [
    _study_sources,
    _study,
    _study_ledger,
    _study_release,
    _downloads,
    _grants,
    _withdrawal,
]


def _number(value: Any) -> str:
    text = f"{value:f}" if hasattr(value, "as_tuple") else str(value)
    return text.rstrip("0").rstrip(".") if "." in text else text
