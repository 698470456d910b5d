"""Evidence packages: one zip per request for a review board, and its offline verification.

The package holds the request, its tiering (reasons, the policy version and its text), the
decisions, the ledger entries of its jobs, the data card, the validation report, the
reproducibility receipt and every audit event that touches it, with the hash links that tie
those events to the chain and the newest signed checkpoint (audit.checkpoints). MANIFEST.json
lists every other file with its SHA-256; MANIFEST.sig.json is an Ed25519 signature over the
manifest's hash under the checkpoint key, and the download's audit event records that hash too,
so a package edited and re-manifested is caught offline (signature) and against the live log.

Audit events of scheme 3 (the default since issue 16 item 3b) carry the canonical text their
hash covers: offline, each event's hash is recomputed from it and the text is checked against the
event's fields, without any key; their keyed tags, and the hashes of older keyed events, need the
audit key (docs/evidence.md).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import transaction
from django.db.models import Model, Q
from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join

from approvals.models import GenerationRequest
from approvals.services import request_get_for
from audit.checkpoints import checkpoints_read, public_key_text, signing_key
from audit.hashing import (
    GENESIS_HASH,
    ROW_FIELDS,
    HashScheme,
    event_hash,
    link_tag,
    linked_hash,
    parse_netstrings,
    sha256_event_hash,
)
from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_checkpoint, audit_denied, audit_record
from catalog.model_cards import model_card
from catalog.models import Release
from catalog.privacy import receipt_visible_to
from catalog.reports import model_report_visible_to, report_visible_to
from core.errors import NotFound
from core.ids import parse_uuid
from core.roles import EXPORTS_EVIDENCE, PortalUser, has_role
from generation.models import SynthesisJob
from generation.selectors import budget_totals, ledger_entries_visible_to

EVIDENCE_ACTION = "request.evidence_download"
MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.sig.json"
FORMAT = 1
# Past this many links between the first packaged event and the checkpoint the package carries
# only the events' own links (a few hundred bytes a link; a busy log would bloat every package).
MAX_LINKS = 50_000
_MANIFEST_KIND = "synthgate.evidence.manifest"
_REFUSAL = (
    "No evidence package for this request is available to you: auditors and privacy officers "
    "export them. Check the request id, or ask one of them."
)
_EVENT_FIELDS = (*ROW_FIELDS, "prev_hash")


# --- Export ------------------------------------------------------------------------------------


def evidence_package(*, request_id: Any, actor: PortalUser) -> bytes:
    """The request's evidence package (zip bytes) for an auditor or privacy officer; audited.

    Everyone else gets 404 (the package is an oversight record: it does not exist for them, as
    the audit log does not), audited as a denial.
    """
    request = _request_for(actor=actor, request_id=request_id)
    anchor = _anchor()
    with transaction.atomic():
        files = _files(request=request, actor=actor, anchor=anchor)
        manifest = _manifest(files)
        manifest_sha = hashlib.sha256(manifest).hexdigest()
        # In the same transaction as the export: no audit row, no package.
        audit_record(
            actor=actor,
            action=EVIDENCE_ACTION,
            target_type="request",
            target_id=request.pk,
            details={
                "manifest_sha256": manifest_sha,
                "files": len(files),
                "audit_events": len(json.loads(files["audit_events.json"])["events"]),
                "anchor_seq": anchor["seq"],
            },
        )
    return _zip({**files, MANIFEST: manifest, SIGNATURE: _signature(manifest_sha, request.pk)})


def _request_for(*, actor: PortalUser, request_id: Any) -> GenerationRequest:
    # The id is typed by the caller: only a well-formed UUID goes into the audit row.
    target = str(parse_uuid(request_id) or "malformed-id")
    # Privacy oversight and audit, the roles that see every release and request (core.roles).
    if not has_role(actor, *EXPORTS_EVIDENCE):
        audit_denied(
            actor=actor, action=EVIDENCE_ACTION, target_type="request", target_id=target, reason="role"
        )
        raise NotFound(_REFUSAL)
    try:
        return request_get_for(actor=actor, request_id=request_id)
    except NotFound:
        audit_denied(
            actor=actor, action=EVIDENCE_ACTION, target_type="request", target_id=target, reason="not_found"
        )
        raise NotFound(_REFUSAL) from None


def _anchor() -> dict[str, Any]:
    """The newest signed checkpoint, after signing the head if it moved: what the package's
    events are tied to. Refused (the chain does not verify) is recorded, not hidden."""
    outcome = audit_checkpoint()
    newest = checkpoints_read().newest
    anchor: dict[str, Any] = {"chain_verified_at_export": outcome.status in ("written", "current")}
    if outcome.status == "refused":
        anchor["chain_broken_at_seq"] = outcome.seq
    if newest is None or outcome.status == "refused":
        head = AuditChainHead.objects.filter(id=1).first()
        seq, digest = (head.seq, head.hash) if head else (0, GENESIS_HASH)
        return {**anchor, "kind": "head (unsigned)", "seq": seq, "hash": digest}
    return {
        **anchor,
        "kind": "checkpoint",
        "seq": newest.seq,
        "hash": newest.hash,
        "at": newest.at,
        "key_id": newest.key_id,
        "signature": newest.signature,
        "public_key": public_key_text(),
    }


def _files(*, request: GenerationRequest, actor: PortalUser, anchor: dict[str, Any]) -> dict[str, bytes]:
    release = Release.objects.filter(request=request).select_related("job", "dataset").first()
    card, card_html, card_source = _card(release, actor)
    events = _events(request, release, upto_seq=anchor["seq"])
    files = {
        "request.json": _json(_request_block(request)),
        "tier.json": _json(_tier_block(request)),
        "decisions.json": _json(_decisions_block(request)),
        "ledger.json": _json(_ledger_block(request, actor)),
        "card.json": _json(card),
        "card.html": card_html.encode("utf-8"),
        "report.json": _json(_report_block(release, actor)),
        "receipt.json": _json(_receipt_block(release, actor)),
        "audit_events.json": _json({"events": events}),
        "audit_proof.json": _json(_proof(events, anchor)),
    }
    files["README.txt"] = _readme(request, card_source).encode("utf-8")
    return files


def _request_block(request: GenerationRequest) -> dict[str, Any]:
    attempts = [
        _row(a, "number", "job_id", "source", "started_by_name", "at")
        for a in request.attempts.order_by("number")
    ]
    return {
        "request": _row(request, exclude=("tier_reasons", "tier_controls", "conditions")),
        "requester_name": request.requester.get_username(),
        "attempts": attempts,
        "jobs": [_job_row(job) for job in _jobs(request)],
    }


def _tier_block(request: GenerationRequest) -> dict[str, Any]:
    assessments = [
        {
            **_row(a, "review_round", "level", "fired", "controls", "facts", "at"),
            "policy": _policy_row(a.policy),
        }
        for a in request.assessments.select_related("policy").order_by("review_round")
    ]
    return {
        "tier_level": request.tier_level,
        "tier_reasons": request.tier_reasons,
        "tier_controls": request.tier_controls,
        "required_approvals": request.required_approvals,
        "policy": _policy_row(request.policy) if request.policy else {"label": request.policy_version},
        "assessments": assessments,
    }


def _policy_row(policy: Any) -> dict[str, Any]:
    # The text is included so the board reads the rules that applied; its hash checks it.
    return _row(policy, "number", "sha256", "source", "published_by_name", "approved_by_name", "decided_at")


def _decisions_block(request: GenerationRequest) -> dict[str, Any]:
    return {
        "conditions": request.conditions,
        "decisions": [
            _row(
                d, "reviewer_name", "reviewer_role", "review_round", "decision", "comment", "conditions", "at"
            )
            for d in request.decisions.order_by("at", "pk")
        ],
        "gate_overrides": [
            _row(o, exclude=("proposed_by", "decided_by")) for o in request.gate_overrides.all()
        ],
        "privacy_retries": [
            _row(r, exclude=("asked_by", "decided_by")) for r in request.privacy_retries.all()
        ],
    }


def _ledger_block(request: GenerationRequest, actor: PortalUser) -> dict[str, Any]:
    job_ids = [job.pk for job in _jobs(request)]
    entries = ledger_entries_visible_to(user=actor, dataset=request.dataset).filter(job_id__in=job_ids)
    totals = budget_totals(dataset=request.dataset)
    totals["ledger_owner"] = totals["ledger_owner"].pk
    return {"totals": totals, "entries": [_row(e, exclude=("id",)) for e in entries]}


def _card(release: Release | None, actor: PortalUser) -> tuple[dict[str, Any], str, str]:
    """The data card (JSON, HTML) and which builder made it."""
    if release is None:
        note = "No release was published for this request."
        return {"release": None, "note": note}, f"<p>{note}</p>\n", "none"
    if release.is_model:
        # A DP model's card: intended and out-of-scope uses, features and target, training
        # population, holdout metrics (outside the DP guarantee), privacy statement, limitations.
        card = model_card(release=release, user=actor)
        html = render_to_string("catalog/_model_card.html", {"model_card": card, "release": release})
        return card, _standalone(release.title, html), "catalog.model_cards"
    try:
        from catalog.cards import release_card  # written alongside; used when present
    except ImportError:
        return _minimal_card(release)
    card = release_card(release=release, user=actor)
    html = render_to_string("catalog/_card.html", {"card": card, "release": release})
    return card, _standalone(release.title, html), "catalog.cards"


def _minimal_card(release: Release) -> tuple[dict[str, Any], str, str]:
    card = _row(
        release, "id", "title", "audience", "rows", "columns", "synthesizer", "is_dp", "epsilon_micro",
        "delta_atto", "privacy", "sha256", "created_at", "expires_at",
    )  # fmt: skip
    rows = format_html_join("\n", "<tr><th>{}</th><td>{}</td></tr>", ((k, _text(v)) for k, v in card.items()))
    html = format_html("<h1>{}</h1>\n<table>\n{}\n</table>\n", release.title, rows)
    return card, _standalone(release.title, html), "minimal (release fields)"


def _standalone(title: str, fragment: str) -> str:
    """A page a reviewer can open from the unzipped folder: no portal styles or scripts."""
    page = '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Data card: {}</title></head>\n<body>\n{}</body></html>\n'
    return str(format_html(page, title, fragment))


def _report_block(release: Release | None, actor: PortalUser) -> dict[str, Any]:
    if release is None:
        return {"release": None}
    if release.is_model:
        report = model_report_visible_to(user=actor, release=release, charts=False)
    else:
        report = report_visible_to(
            user=actor, gate=release.gate, metrics=release.metrics, is_dp=release.is_dp, charts=False
        )
    return {"release": str(release.pk), **{k: v for k, v in report.items() if k != "charts"}}


def _receipt_block(release: Release | None, actor: PortalUser) -> dict[str, Any]:
    # The receipt recorded at publication (catalog.services.build_receipt), not one built now:
    # package versions may have moved since.
    if release is None:
        return {"release": None}
    receipt = receipt_visible_to(user=actor, receipt=release.receipt or {}, is_dp=release.is_dp)
    return {
        "release": str(release.pk),
        "kind": release.kind,
        "artifact_format": release.artifact_format,
        "output_sha256": release.sha256,
        "receipt": receipt,
    }


def _jobs(request: GenerationRequest) -> list[SynthesisJob]:
    """Every job run for the request: attempts, bake-off candidates, privacy retries, overrides."""
    found: list[UUID | None] = [request.job_id, *request.attempts.values_list("job_id", flat=True)]
    found += request.gate_overrides.values_list("job_id", flat=True)
    found += request.privacy_retries.values_list("failed_job_id", flat=True)
    found += request.privacy_retries.values_list("retry_job_id", flat=True)
    found += SynthesisJob.objects.filter(candidate_run__attempt__request=request).values_list("pk", flat=True)
    ids = {job_id for job_id in found if job_id is not None}
    return list(SynthesisJob.objects.filter(pk__in=ids).order_by("created_at"))


def _job_row(job: SynthesisJob) -> dict[str, Any]:
    # Not the error message: a failing job's message is free text, the code says what failed.
    return _row(
        job, "id", "state", "synthesizer", "rows", "columns", "epsilon_micro", "delta_atto", "seed",
        "attempts", "error_code", "output_sha256", "created_at", "started_at", "finished_at",
    )  # fmt: skip


def _events(request: GenerationRequest, release: Release | None, *, upto_seq: int) -> list[dict[str, Any]]:
    """Every event whose target is the request, one of its jobs, attempts, decisions or its
    release, or whose details name the request; up to the anchor."""
    targets = Q(target_type="request", target_id=str(request.pk)) | Q(details__request=str(request.pk))
    for kind, ids in (
        ("job", [job.pk for job in _jobs(request)]),
        ("attempt", list(request.attempts.values_list("pk", flat=True))),
        ("decision", list(request.decisions.values_list("pk", flat=True))),
        ("release", [release.pk] if release else []),
    ):
        if ids:
            targets |= Q(target_type=kind, target_id__in=[str(i) for i in ids])
    rows = AuditEvent.objects.filter(targets, seq__lte=upto_seq).order_by("seq")
    return [_event_row(event) for event in rows]


def _event_row(event: AuditEvent) -> dict[str, Any]:
    row = {name: getattr(event, name) for name in _EVENT_FIELDS}
    row["at"] = event.at.isoformat(timespec="microseconds")  # exactly as audit.hashing hashes it
    row = {**row, "hash": event.hash, "hash_scheme": event.hash_scheme}
    if event.hash_scheme == HashScheme.LINKED:
        # The text the hash covers, as the database built it from the fields above, and the tag.
        row |= {"canonical": event.canonical, "tag": event.tag}
    return row


def _proof(events: list[dict[str, Any]], anchor: dict[str, Any]) -> dict[str, Any]:
    first = events[0]["seq"] if events else anchor["seq"]
    span = anchor["seq"] - first + 1
    links = AuditEvent.objects.filter(seq__gte=first, seq__lte=anchor["seq"])
    complete = span <= MAX_LINKS
    if not complete:
        links = links.filter(seq__in=[e["seq"] for e in events])
    return {
        "format": FORMAT,
        "anchor": anchor,
        "event_seqs": [e["seq"] for e in events],
        "links": {
            "from_seq": first,
            "to_seq": anchor["seq"],
            "complete": complete,
            "entries": [list(link) for link in links.order_by("seq").values_list("seq", "prev_hash", "hash")],
        },
        "hash_schemes": {str(s.value): s.label for s in HashScheme},
        "canonical_form": (
            "JSON of the event fields seq, at, actor_id, actor_name, action, target_type, target_id, "
            "outcome, details, request_id, prev_hash (plus scheme=2 for keyed rows), sorted keys, "
            "separators (',', ':'), ASCII; scheme 1 = SHA-256 of it, scheme 2 = HMAC-SHA256 under "
            "the audit key. Scheme 3: the event's `canonical` text, netstrings (<UTF-8 byte length>:"
            "<value>,; '-,' for no actor) of prev_hash, hash_scheme, seq, at (UTC, as the database "
            "stores it), actor_id, actor_name, action, target_type, target_id, outcome, details (JSON "
            "text), request_id; hash = SHA-256 of that text's UTF-8 bytes (it starts with prev_hash); "
            "tag = HMAC-SHA256 under the audit key of 'synthgate.audit.tag.v1:' + hash"
        ),
    }


def _manifest(files: dict[str, bytes]) -> bytes:
    entries = {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in files.items()
    }
    return _json({"format": FORMAT, "files": dict(sorted(entries.items()))})


def _signature(manifest_sha: str, request_pk: Any) -> bytes:
    private = signing_key()
    message = _signed_message(manifest_sha)
    return _json(
        {
            "manifest_sha256": manifest_sha,
            "request": str(request_pk),
            "public_key": public_key_text(),
            "key_id": hashlib.sha256(base64.urlsafe_b64decode(public_key_text())).hexdigest()[:16],
            "signature": base64.urlsafe_b64encode(private.sign(message)).decode("ascii"),
        }
    )


def _signed_message(manifest_sha: str) -> bytes:
    # Its own kind, so a manifest signature can never pass for a checkpoint or the reverse.
    payload = {"kind": _MANIFEST_KIND, "v": 1, "manifest_sha256": manifest_sha}
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("ascii")


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    stamp = datetime.now(UTC).timetuple()[:6]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            archive.writestr(zipfile.ZipInfo(name, date_time=stamp), files[name], zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _readme(request: GenerationRequest, card_source: str) -> str:
    return (
        f"SynthGate evidence package for request {request.pk}\n"
        f"Exported {datetime.now(UTC).isoformat(timespec='seconds')}. Data card built by: {card_source}.\n\n"
        "Verify it offline:  python manage.py verify_evidence <this.zip> "
        "[--public-key KEY]  (KEY: `python manage.py audit_checkpoint --public-key`)\n"
        "By hand: the SHA-256 of each file must equal its entry in MANIFEST.json; the SHA-256 of "
        "MANIFEST.json must equal manifest_sha256 in MANIFEST.sig.json and in the audit event "
        f"'{EVIDENCE_ACTION}' that recorded this download.\n"
        "What offline verification proves, and what it cannot: docs/evidence.md.\n"
    )


def _row(obj: Model, *names: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """Named fields (all concrete fields but `exclude` when none are named), foreign keys as ids."""
    if not names:
        names = tuple(f.attname for f in obj._meta.concrete_fields if f.name not in exclude)
    return {name: _plain(getattr(obj, name)) for name in names}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, default=_plain_default) + "\n").encode("utf-8")


def _plain_default(value: Any) -> Any:
    plain = _plain(value)
    return plain if plain is not value else str(value)


# --- Verification ----------------------------------------------------------------------------


@dataclass
class EvidenceVerdict:
    """Problems found (empty: the package verifies) and what was and was not checked."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manifest_sha256: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def evidence_verify(data: bytes, *, public_key: str = "", audit_key: bytes | None = None) -> EvidenceVerdict:
    """Check a package without the database: manifest and file hashes, no extra or missing file,
    the manifest and checkpoint signatures, the audit events against their links and the anchor;
    each event's own hash where it can be recomputed (unkeyed rows; keyed ones given `audit_key`)."""
    verdict = EvidenceVerdict()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            files = {info.filename: archive.read(info) for info in archive.infolist()}
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        verdict.problems.append(f"not a readable zip: {exc}")
        return verdict
    try:
        _check_manifest(files, verdict, public_key)
        if verdict.ok:
            _check_audit(files, verdict, public_key, audit_key)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        verdict.problems.append(f"malformed package: {type(exc).__name__}: {exc}")
    return verdict


def evidence_check_live(data: bytes, verdict: EvidenceVerdict) -> None:
    """On the portal: the download that produced this manifest is in the audit log, and every
    packaged event is the live row with the same sequence number (same hash). Adds problems."""
    if not verdict.manifest_sha256:
        return
    downloads = AuditEvent.objects.filter(action=EVIDENCE_ACTION, outcome="success")
    if not downloads.filter(details__manifest_sha256=verdict.manifest_sha256).exists():
        verdict.problems.append(f"{MANIFEST}: no download in the audit log recorded this manifest")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        events = json.loads(archive.read("audit_events.json"))["events"]
    live = dict(AuditEvent.objects.filter(seq__in=[e["seq"] for e in events]).values_list("seq", "hash"))
    for event in events:
        if live.get(event["seq"]) != event["hash"]:
            verdict.problems.append(
                f"audit_events.json: event seq {event['seq']} differs from the live audit log"
            )


def _check_manifest(files: dict[str, bytes], verdict: EvidenceVerdict, public_key: str) -> None:
    for required in (MANIFEST, SIGNATURE):
        if required not in files:
            verdict.problems.append(f"{required}: missing")
    if not verdict.ok:
        return
    verdict.manifest_sha256 = hashlib.sha256(files[MANIFEST]).hexdigest()
    listed = json.loads(files[MANIFEST])["files"]
    for name, entry in sorted(listed.items()):
        if name not in files:
            verdict.problems.append(f"{name}: listed in the manifest but missing")
        elif hashlib.sha256(files[name]).hexdigest() != entry["sha256"]:
            verdict.problems.append(f"{name}: SHA-256 differs from the manifest (the file was edited)")
    for name in sorted(set(files) - set(listed) - {MANIFEST, SIGNATURE}):
        verdict.problems.append(f"{name}: not listed in the manifest (a file was added)")
    signed = json.loads(files[SIGNATURE])
    if signed["manifest_sha256"] != verdict.manifest_sha256:
        verdict.problems.append(
            f"{MANIFEST}: its SHA-256 differs from the signed one (the manifest was edited)"
        )
    else:
        _signature_ok(signed, _signed_message(verdict.manifest_sha256), public_key, verdict, SIGNATURE)
    if not public_key:
        verdict.notes.append(
            "signatures were checked against the key inside the package; pass --public-key (from "
            "`manage.py audit_checkpoint --public-key`) to pin the portal's key"
        )


def _check_audit(
    files: dict[str, bytes], verdict: EvidenceVerdict, public_key: str, key: bytes | None
) -> None:
    events = json.loads(files["audit_events.json"])["events"]
    proof = json.loads(files["audit_proof.json"])
    anchor, links = proof["anchor"], proof["links"]
    if not anchor.get("chain_verified_at_export"):
        verdict.problems.append(
            f"audit_proof.json: the chain did not verify when the package was exported "
            f"(broken at seq {anchor.get('chain_broken_at_seq')}); run verify_audit on the server"
        )
    if anchor.get("kind") == "checkpoint":
        fields = {"kind": "synthgate.audit.checkpoint", "v": 1, "seq": anchor["seq"], "hash": anchor["hash"]}
        message = json.dumps({**fields, "at": anchor["at"]}, sort_keys=True, separators=(",", ":")).encode(
            "ascii"
        )
        _signature_ok(anchor, message, public_key, verdict, "audit_proof.json checkpoint")
    else:
        verdict.notes.append("no signed checkpoint in the package: the anchor is the unsigned chain head")
    by_seq = {entry[0]: entry for entry in links["entries"]}
    _check_links(links, anchor, verdict)
    for event in events:
        _check_event(event, by_seq, verdict, key)
    packaged = [event["seq"] for event in events]
    for seq in sorted(set(proof["event_seqs"]) - set(packaged)):
        verdict.problems.append(
            f"audit_events.json: event seq {seq} is listed in audit_proof.json but missing"
        )
    for seq in sorted(set(packaged) - set(proof["event_seqs"])):
        verdict.problems.append(f"audit_events.json: event seq {seq} is not listed in audit_proof.json")
    if len(set(packaged)) != len(packaged):
        verdict.problems.append("audit_events.json: an event appears twice")
    if not links["complete"]:
        verdict.notes.append(
            "the links between events are not all included (long span): only each event's own"
        )


def _check_links(links: dict[str, Any], anchor: dict[str, Any], verdict: EvidenceVerdict) -> None:
    entries = links["entries"]
    if not links["complete"]:
        return
    expected = list(range(links["from_seq"], links["to_seq"] + 1))
    if [e[0] for e in entries] != expected or links["to_seq"] != anchor["seq"]:
        verdict.problems.append("audit_proof.json: the links are not one unbroken run up to the anchor")
        return
    for before, after in zip(entries, entries[1:], strict=False):
        if after[1] != before[2]:
            verdict.problems.append(f"audit_proof.json: seq {after[0]} does not link to seq {before[0]}")
    if entries and entries[-1][2] != anchor["hash"]:
        verdict.problems.append("audit_proof.json: the last link's hash is not the anchor's")


def _check_event(
    event: dict[str, Any], by_seq: dict[int, list[Any]], verdict: EvidenceVerdict, key: bytes | None
) -> None:
    seq = event["seq"]
    link = by_seq.get(seq)
    if link is None or link[1:] != [event["prev_hash"], event["hash"]]:
        verdict.problems.append(
            f"audit_events.json: event seq {seq} does not match its link in audit_proof.json"
        )
        return
    if event["hash_scheme"] == HashScheme.LINKED:
        if not _linked_event_ok(event, key):
            verdict.problems.append(
                f"audit_events.json: event seq {seq} does not match its hash (a field was edited)"
            )
        return
    fields = {name: event[name] for name in _EVENT_FIELDS}
    fields["at"] = datetime.fromisoformat(fields["at"])
    if event["hash_scheme"] == HashScheme.SHA256:
        recomputed = sha256_event_hash(**fields)
    elif key is not None:
        recomputed = event_hash(scheme=event["hash_scheme"], key=key, **fields)
    else:
        return
    if recomputed != event["hash"]:
        verdict.problems.append(
            f"audit_events.json: event seq {seq} does not match its hash (a field was edited)"
        )


def _canonical_at(text: str) -> datetime:
    """`at` as a scheme-3 text holds it: microseconds since the epoch (PostgreSQL) or the stored
    UTC text (SQLite)."""
    if text.lstrip("-").isdigit():
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(text))
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _linked_event_ok(event: dict[str, Any], key: bytes | None) -> bool:
    """A scheme-3 event: its hash is the link over its canonical text, the text holds exactly the
    event's fields, and (given the audit key) its tag is the key's."""
    canonical = event.get("canonical")
    if not isinstance(canonical, str) or linked_hash(canonical) != event["hash"]:
        return False
    fields = parse_netstrings(canonical)
    if fields is None or len(fields) != 12:
        return False
    prev, scheme, seq, at, actor_id, *texts, details, request_id = fields
    try:
        same_at = at is not None and _canonical_at(at) == datetime.fromisoformat(event["at"])
        same_details = details is not None and json.loads(details) == event["details"]
    except ValueError:
        return False
    expected_actor = None if event["actor_id"] is None else str(event["actor_id"])
    names = ("actor_name", "action", "target_type", "target_id", "outcome")
    if not (
        same_at
        and same_details
        and [prev, scheme, seq, actor_id, request_id]
        == [
            event["prev_hash"],
            str(event["hash_scheme"]),
            str(event["seq"]),
            expected_actor,
            event["request_id"],
        ]
        and texts == [event[name] for name in names]
    ):
        return False
    return key is None or event.get("tag") == link_tag(key, event["hash"])


def _signature_ok(
    signed: dict[str, Any], message: bytes, pinned: str, verdict: EvidenceVerdict, what: str
) -> bool:
    key_text = signed["public_key"]
    if pinned and key_text != pinned:
        verdict.problems.append(f"{what}: signed with a key other than the one given (--public-key)")
        return False
    try:
        raw = base64.urlsafe_b64decode(key_text)
        Ed25519PublicKey.from_public_bytes(raw).verify(base64.urlsafe_b64decode(signed["signature"]), message)
    except (ValueError, InvalidSignature):
        verdict.problems.append(f"{what}: the signature does not verify")
        return False
    if hashlib.sha256(raw).hexdigest()[:16] != signed["key_id"]:
        verdict.problems.append(f"{what}: key id does not match its public key")
        return False
    return True
