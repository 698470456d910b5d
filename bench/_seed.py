"""Realistic volumes, fast: a few objects made by the real services, then bulk clones of them.

Shared by bench/pages.py and bench/load.py. Everything is read from inside the repository
(tests/data/whas500.csv). Nothing here runs in production (`refuse_production`).

What the services make (`base`): the personas (one per role, the officers and the auditor with a
TOTP device from BENCH_TOTP_SECRET), whas500 registered, declared and signed off by the steward,
and one request in each state a year of use is made of: published for the team (internal) and for
the whole organization (approved by as many officers as its tier needs, synthesized and validated
by the pipeline task the worker runs), waiting for review, draft, rejected; one access request from
another team, granted. Their audit events, notifications and ledger are the services' own.

What is cloned (`grow_to`): each new request copies one of those "families" (the request, its tier
assessments, decisions, attempt, synthesis job, validation report, release and notifications) with
new primary keys, a requester and team from a pool of scientists across five teams, a dataset from
a pool of cloned registrations (one per 100 requests), and creation times spread over a year. Every
foreign key points at a real row and every JSON field is a copy of one the services wrote. Clones
are written with bulk_create in batches, so 10,000 requests take seconds, not hours. The audit
chain is not cloned (its rows are hash-linked): `audit_per_request` real events per new request
are appended through audit.services.audit_record instead, so the audit page sees a year's volume.
"""

from __future__ import annotations

import copy
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SOURCE = ROOT / "tests" / "data" / "whas500.csv"
OUTCOME = "fstat"
# Bench logins only: a throwaway database, refused in production (like seed_demo's password).
BENCH_PASSWORD = "bench-Correct-Horse-42"
BENCH_TOTP_SECRET = "SYNTHGATEBENCH234SYNTHGATEBENCH2"
TEAMS = ["Cardiology", "Oncology", "Neurology", "Nephrology", "Endocrinology"]
SCIENTISTS_PER_TEAM = 4
REQUESTS_PER_DATASET = 100
# At least this many datasets, so the dataset list at the smallest size holds the 10 rows issue 16's
# "the same page at 10 rows" compares with (it held 1 before 2026-12-05).
MIN_DATASETS = 10
# The same for every other list the bench reads (access requests, each persona's notifications).
MIN_LISTED = 10
# The share of each kind of request in a year (published ~ half, as the 10,000 / 5,008).
MIX = [("published_internal", 25), ("published_org", 25), ("submitted", 20), ("draft", 15), ("rejected", 15)]
BATCH = 500


def refuse_production() -> None:
    if os.environ.get("SYNTHGATE_ENV") == "production":
        raise SystemExit("The benchmarks create logins with a published password: refused in production.")


def setup_django(*, var_dir: Path, database_url: str | None) -> None:
    """Settings for a throwaway install under `var_dir` (SQLite there, or `database_url`)."""
    refuse_production()
    os.environ["SYNTHGATE_ENV"] = "test"
    os.environ["SYNTHGATE_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("XDG_DATA_HOME", str(var_dir / "xdg"))
    for name in ("CELERY_BROKER_URL", "SYNTHGATE_STORAGE_DIR"):
        os.environ.pop(name, None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import logging
    import warnings

    import django

    django.setup()
    # The pipeline's progress lines, anonymeter's small-sample warnings and django.request's line
    # per refused page (a scientist on the review queue) would bury the tables.
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(*, pgid: int | None = None, command: str | None = None) -> float:
    """User + system CPU seconds used so far by the live processes of process group `pgid` (a
    server or worker started in its own session: its master and workers) or named `command`
    (e.g. "postgres"). Divided by the requests a phase served, a server's CPU per request, which
    other work on a shared machine stretches far less than it stretches req/s."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended meanwhile
        name, _, rest = text.partition(" (")[2].rpartition(") ")
        fields = rest.split()
        if len(fields) < 13:
            continue
        # After the name: state, ppid, pgrp (index 2), ...; utime and stime at 11 and 12.
        if (pgid is not None and int(fields[2]) == pgid) or (command is not None and name == command):
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def gunicorn_argv(*, port: int, workers: int) -> list[str]:
    """gunicorn serving the portal as scripts/run.sh does (gunicorn.conf.py, gthread with 4
    threads, 15 s keep-alive), on 127.0.0.1:`port` with `workers` processes."""
    return [
        str(Path(sys.executable).parent / "gunicorn"), "portal.wsgi:application",
        "--config", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--threads", "4", "--keep-alive", "15",
        "--timeout", "120", "--graceful-timeout", "10", "--no-control-socket",
    ]  # fmt: skip


# --- the service-made base ---------------------------------------------------------------------


def _user(username: str, role: str, team: str | None) -> Any:
    from core.roles import NEEDS_SECOND_FACTOR
    from portal.auth_mfa import totp_enrol_with_secret
    from portal.services import user_create

    user = user_create(actor=None, username=username, password=BENCH_PASSWORD, role=role, team_name=team)
    if role in NEEDS_SECOND_FACTOR:
        totp_enrol_with_secret(user=user, secret_base32=BENCH_TOTP_SECRET)
    return user


def base(*, log: Any = print) -> dict[str, Any]:
    """The personas and one family of each kind, made by the real services (about a minute:
    two real syntheses and validations)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    import generation.services.datasets as intake
    from approvals.choices import RequestStatus
    from approvals.models import GenerationRequest
    from approvals.services import RequestInput, request_create, request_decide, request_submit
    from catalog.access import access_request_create, access_request_decide
    from catalog.models import Release
    from catalog.pipeline import pipeline_run
    from core.roles import Role
    from generation.models import SynthesisJob
    from generation.services import dataset_register, dataset_sign_off, dataset_update_columns

    # Registration draws a random holdout split; a fixed one (as the tests fix it) keeps the
    # template releases' gate verdict the same on every run.
    intake.new_holdout_seed = lambda: 20240601
    started = time.perf_counter()
    people = {
        "steward": _user("bench-steward", Role.DATA_STEWARD, "Data Office"),
        "officer": _user("bench-officer", Role.PRIVACY_OFFICER, "Privacy"),
        "officer2": _user("bench-officer2", Role.PRIVACY_OFFICER, "Privacy"),
        "auditor": _user("bench-auditor", Role.AUDITOR, "Audit"),
        "scientist": _user("bench-scientist", Role.DATA_SCIENTIST, TEAMS[0]),
        "other": _user("bench-other", Role.DATA_SCIENTIST, TEAMS[1]),
    }
    steward = people["steward"]
    upload = SimpleUploadedFile(SOURCE.name, SOURCE.read_bytes(), content_type="text/csv")
    dataset = dataset_register(actor=steward, name="whas500", uploaded_file=upload, epsilon_cap="3")
    dataset_update_columns(actor=steward, dataset_id=dataset.pk, changes=[{"name": OUTCOME, "outcome": True}])
    dataset = dataset_sign_off(actor=steward, dataset_id=dataset.pk)
    columns = list(
        dataset.columns.exclude(classification="direct_identifier")
        .order_by("position")
        .values_list("name", flat=True)
    )
    scientist = people["scientist"]

    def filed(title: str, audience: str) -> GenerationRequest:
        return request_create(
            actor=scientist,
            data=RequestInput(
                dataset_id=dataset.pk,
                title=title,
                purpose="Prototype a one-year mortality model before applying for the real data.",
                intended_use="Feature engineering in a notebook",
                audience=audience,
                columns=columns,
                synthesizer="gaussian_copula",
                rows=300,
            ),
        )

    def approved(request: GenerationRequest) -> GenerationRequest:
        submitted = request_submit(actor=scientist, request_id=request.pk)
        for officer in (people["officer"], people["officer2"]):
            submitted.refresh_from_db()
            if submitted.status != RequestStatus.IN_REVIEW:
                break
            request_decide(actor=officer, request_id=submitted.pk, decision="approve", comment="bench")
        submitted.refresh_from_db()
        return submitted

    families: dict[str, Any] = {}
    for kind, audience in (("published_internal", "internal"), ("published_org", "organization")):
        request = approved(filed(f"whas500 {audience} release", audience))
        SynthesisJob.objects.filter(pk=request.job_id).update(seed=20240601)
        verdict = pipeline_run(job_id=request.job_id)
        if verdict != "published":
            raise SystemExit(f"The {audience} template was not published ({verdict}); see the job's report.")
        families[kind] = GenerationRequest.objects.get(pk=request.pk)
    families["submitted"] = request_submit(
        actor=scientist, request_id=filed("whas500 waiting", "internal").pk
    )
    families["draft"] = filed("whas500 draft", "internal")
    rejected = request_submit(actor=scientist, request_id=filed("whas500 refused", "internal").pk)
    request_decide(actor=people["officer"], request_id=rejected.pk, decision="reject", comment="bench")
    families["rejected"] = GenerationRequest.objects.get(pk=rejected.pk)

    from django.utils import timezone

    internal = Release.objects.get(request=families["published_internal"])
    access = access_request_create(
        actor=people["other"],
        release_id=internal.pk,
        purpose="Compare with our cohort's model.",
        expires_at=timezone.now() + timedelta(days=90),
    )
    access_request_decide(actor=people["officer"], request_id=access.pk, decision="grant")
    log(
        f"  services: personas, whas500, {len(families)} request families in {time.perf_counter() - started:.0f} s"
    )
    return {"people": people, "dataset": dataset, "families": families, "access": access}


# --- cloning -----------------------------------------------------------------------------------


@contextmanager
def _explicit_timestamps(*models: Any) -> Iterator[None]:
    """bulk_create would stamp auto_now(_add) fields with now(); clones carry their own dates."""
    saved = []
    for model in models:
        for field in model._meta.concrete_fields:
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                saved.append((field, field.auto_now, field.auto_now_add))
                field.auto_now = field.auto_now_add = False
    try:
        yield
    finally:
        for field, auto_now, auto_now_add in saved:
            field.auto_now, field.auto_now_add = auto_now, auto_now_add


def _copy(obj: Any, **changes: Any) -> Any:
    from django.db.models.base import ModelState

    new = copy.copy(obj)
    new._state = ModelState()
    for key in [k for k in new.__dict__ if k.startswith("_") and k.endswith("_cache")]:
        del new.__dict__[key]
    new.__dict__.pop("_prefetched_objects_cache", None)
    for name, value in changes.items():
        setattr(new, name, value)
    return new


def _shift(value: Any, delta: timedelta) -> Any:
    return None if value is None else value + delta


def _swap(text: str, ids: dict[str, str]) -> str:
    for old, new in ids.items():
        text = text.replace(old, new)
    return text


class Grower:
    """Clones families until the database holds N requests; call grow_to with increasing N."""

    def __init__(
        self, seeded: dict[str, Any], *, audit_per_request: int = 1, seed: int = 16, analyze: bool = True
    ) -> None:
        from portal.models import Team, User

        self.seeded = seeded
        self.analyze = analyze
        self.audit_per_request = audit_per_request
        self.random = random.Random(seed)
        self.datasets = [seeded["dataset"]]
        people = seeded["people"]
        # The pool of requesters: the persona scientists and bulk copies of them, four per team.
        teams = {name: Team.objects.get_or_create(name=name)[0] for name in TEAMS}
        template = people["scientist"]
        pool: list[Any] = []
        for team_name, team in teams.items():
            mine = list(User.objects.filter(team=team, role=template.role, is_active=True))
            extra = [
                _copy(template, id=None, pk=None, username=f"bench-{team_name.lower()}-{i}", team_id=team.pk)
                for i in range(len(mine), SCIENTISTS_PER_TEAM)
            ]
            User.objects.bulk_create(extra)
            pool += list(User.objects.filter(team=team, role=template.role, is_active=True))
        self.pool = pool
        self.families = [self._family(seeded["families"][kind]) for kind, _ in MIX]
        # A fixed interleaving of the mix (not a random draw), so even 10 rows hold every kind.
        weights = dict(MIX)
        self.cycle = [
            family
            for step in range(max(weights.values()))
            for family, (_, weight) in zip(self.families, MIX, strict=True)
            if step < weight
        ]

    def _family(self, request: Any) -> dict[str, Any]:
        from approvals.models import Decision, GenerationAttempt, TierAssessment
        from catalog.models import Release
        from generation.models import SynthesisJob
        from notifications.models import Notification
        from validation.models import ValidationReport

        job = SynthesisJob.objects.filter(pk=request.job_id).first()
        release = Release.objects.filter(request=request).first()
        ids = [str(request.pk)] + [str(x.pk) for x in (job, release) if x is not None]
        return {
            "request": request,
            "assessments": list(TierAssessment.objects.filter(request=request)),
            "decisions": list(Decision.objects.filter(request=request)),
            "job": job,
            "attempts": list(GenerationAttempt.objects.filter(request=request, job=job)) if job else [],
            "validation": ValidationReport.objects.filter(job=job).first() if job else None,
            "release": release,
            "notifications": list(Notification.objects.filter(target_id__in=ids)),
        }

    def _more_datasets(self, wanted: int) -> None:
        from generation.models import ClassificationVersion, DatasetColumn, SourceDataset

        first = self.seeded["dataset"]
        columns = list(DatasetColumn.objects.filter(dataset=first))
        versions = list(ClassificationVersion.objects.filter(dataset=first))
        new = [
            _copy(first, id=uuid.uuid4(), name=f"whas500 site {len(self.datasets) + i}")
            for i in range(wanted - len(self.datasets))
        ]
        if not new:
            return
        SourceDataset.objects.bulk_create(new)
        DatasetColumn.objects.bulk_create(
            [_copy(c, id=None, pk=None, dataset_id=d.pk) for d in new for c in columns], batch_size=BATCH
        )
        ClassificationVersion.objects.bulk_create(
            [_copy(v, id=None, pk=None, dataset_id=d.pk) for d in new for v in versions], batch_size=BATCH
        )
        self.datasets += new

    def grow_to(self, total: int, *, log: Any = print) -> None:

        from django.db import transaction
        from django.utils import timezone

        from approvals.models import Decision, GenerationAttempt, GenerationRequest, TierAssessment
        from catalog.models import AccessRequest, Release
        from generation.models import SynthesisJob
        from notifications.models import Notification
        from validation.models import ValidationReport

        have = GenerationRequest.objects.count()
        if total <= have:
            return
        started = time.perf_counter()
        self._more_datasets(max(MIN_DATASETS, total // REQUESTS_PER_DATASET))
        now = timezone.now()
        models = (
            SynthesisJob,
            GenerationRequest,
            TierAssessment,
            Decision,
            GenerationAttempt,
            ValidationReport,
            Release,
            Notification,
            AccessRequest,
        )
        rows: dict[Any, list[Any]] = {model: [] for model in models}
        other = self.seeded["people"]["other"]
        access_template = self.seeded["access"]
        for index in range(total - have):
            family = self.cycle[(have + index) % len(self.cycle)]
            template = family["request"]
            requester = self.pool[(have + index) % len(self.pool)]
            dataset = self.datasets[(have + index) % len(self.datasets)]
            # Spread over the past year; every date of the family moves by the same amount.
            delta = (now - timedelta(seconds=self.random.uniform(0, 365 * 86400))) - template.created_at
            request_id, job_id, release_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            ids = {str(template.pk): str(request_id)}
            job = family["job"]
            if job is not None:
                ids[str(job.pk)] = str(job_id)
                rows[SynthesisJob].append(
                    _copy(
                        job,
                        id=job_id,
                        dataset_id=dataset.pk,
                        created_at=_shift(job.created_at, delta),
                        started_at=_shift(job.started_at, delta),
                        finished_at=_shift(job.finished_at, delta),
                        data_accessed_at=_shift(job.data_accessed_at, delta),
                    )
                )
                for attempt in family["attempts"]:
                    rows[GenerationAttempt].append(
                        _copy(
                            attempt,
                            id=None,
                            pk=None,
                            request_id=request_id,
                            job_id=job_id,
                            at=_shift(attempt.at, delta),
                        )
                    )
                if family["validation"] is not None:
                    report = family["validation"]
                    rows[ValidationReport].append(
                        _copy(
                            report,
                            id=None,
                            pk=None,
                            job_id=job_id,
                            created_at=_shift(report.created_at, delta),
                        )
                    )
            rows[GenerationRequest].append(
                _copy(
                    template,
                    id=request_id,
                    dataset_id=dataset.pk,
                    requester_id=requester.pk,
                    team_id=requester.team_id,
                    title=f"{template.title} #{have + index + 1}",
                    job_id=job_id if job is not None else None,
                    created_at=_shift(template.created_at, delta),
                    updated_at=_shift(template.updated_at, delta),
                    submitted_at=_shift(template.submitted_at, delta),
                    first_submitted_at=_shift(template.first_submitted_at, delta),
                    decided_at=_shift(template.decided_at, delta),
                )
            )
            for assessment in family["assessments"]:
                rows[TierAssessment].append(
                    _copy(
                        assessment, id=None, pk=None, request_id=request_id, at=_shift(assessment.at, delta)
                    )
                )
            for decision in family["decisions"]:
                rows[Decision].append(
                    _copy(decision, id=None, pk=None, request_id=request_id, at=_shift(decision.at, delta))
                )
            release = family["release"]
            if release is not None:
                ids[str(release.pk)] = str(release_id)
                rows[Release].append(
                    _copy(
                        release,
                        id=release_id,
                        request_id=request_id,
                        job_id=job_id,
                        dataset_id=dataset.pk,
                        team_id=requester.team_id,
                        title=f"{release.title} #{have + index + 1}",
                        created_at=_shift(release.created_at, delta),
                        expires_at=_shift(release.expires_at, delta),
                    )
                )
                # One internal release in ten draws an access request from another team.
                if release.audience == "internal" and requester.team_id != other.team_id and index % 10 == 0:
                    rows[AccessRequest].append(
                        _copy(
                            access_template,
                            id=uuid.uuid4(),
                            release_id=release_id,
                            created_at=_shift(access_template.created_at, delta),
                            decided_at=_shift(access_template.decided_at, delta),
                            requested_expires_at=now + timedelta(days=90),
                            grant_expires_at=now + timedelta(days=90),
                        )
                    )
            for note in family["notifications"]:
                # The requester's notices go to the new requester; the officers' stay theirs.
                recipient = requester.pk if note.recipient_id == template.requester_id else note.recipient_id
                rows[Notification].append(
                    _copy(
                        note,
                        id=None,
                        pk=None,
                        recipient_id=recipient,
                        message=_swap(note.message, ids),
                        url=_swap(note.url, ids),
                        target_id=_swap(note.target_id, ids),
                        dedup_key=_swap(note.dedup_key, ids),
                        created_at=_shift(note.created_at, delta),
                        read_at=_shift(note.read_at, delta),
                    )
                )
        with transaction.atomic(), _explicit_timestamps(*models):
            # Parents before children (jobs before requests, requests before releases, ...).
            for model in models:
                model.objects.bulk_create(rows[model], batch_size=BATCH)
        self._at_least_ten(now)
        cloned = time.perf_counter() - started
        self._audit(total - have)
        log(
            f"  cloned {total - have} requests ({len(rows[Release])} releases, "
            f"{len(rows[Notification])} notifications, {len(rows[AccessRequest])} access requests) "
            f"in {cloned:.1f} s; audit events in {time.perf_counter() - started - cloned:.1f} s"
        )
        if self.analyze:
            # A deployment that grew to this size has had the hourly synthgate.db.analyze run.
            from core.dbstats import analyze

            log(f"  ANALYZE (the hourly synthgate.db.analyze task's work): {analyze().seconds:.2f} s")

    def _at_least_ten(self, now: Any) -> None:
        """Every list the personas read holds at least MIN_LISTED rows: issue 16 compares each
        page at 10,000 requests with "the same page at 10 rows", and at 10 requests the bench's mix
        leaves 1 access request and fewer than 10 notifications for some personas. Copies of the
        seeded ones (new ids and dedup keys, dates spread over the last days) make up the rest."""
        from django.db import transaction

        from catalog.models import AccessRequest
        from notifications.models import Notification

        rows: list[Any] = []
        access = self.seeded["access"]
        missing = MIN_LISTED - AccessRequest.objects.count()
        rows += [
            _copy(access, id=uuid.uuid4(), created_at=now - timedelta(days=i + 1)) for i in range(missing)
        ]
        notes: list[Any] = []
        for person in self.seeded["people"].values():
            mine = list(Notification.objects.filter(recipient=person).order_by("-created_at")[:1])
            missing = MIN_LISTED - Notification.objects.filter(recipient=person).count()
            if mine and missing > 0:
                notes += [
                    _copy(
                        mine[0],
                        id=None,
                        pk=None,
                        dedup_key=f"{mine[0].dedup_key}#bench-{i}",
                        created_at=now - timedelta(days=i + 1),
                    )
                    for i in range(missing)
                ]
        with transaction.atomic(), _explicit_timestamps(AccessRequest, Notification):
            AccessRequest.objects.bulk_create(rows)
            Notification.objects.bulk_create(notes)

    def _audit(self, count: int) -> None:
        """Real chained audit events (what a year of reviews and downloads leaves in the log)."""
        from django.db import transaction

        from audit.services import audit_record

        officer = self.seeded["people"]["officer"]
        for start in range(0, count * self.audit_per_request, BATCH):
            with transaction.atomic():
                for i in range(start, min(start + BATCH, count * self.audit_per_request)):
                    audit_record(
                        actor=officer, action="request.view", target_type="bench", target_id=f"bench-{i}"
                    )
