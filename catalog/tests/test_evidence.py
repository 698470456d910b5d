"""Evidence packages: what an auditor downloads, that verify_evidence passes it, and that an edited
package, a dropped or altered audit event, or a re-signed manifest is caught; who is refused."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management import call_command
from django.urls import include, path
from rest_framework.test import APIRequestFactory, force_authenticate

from audit.checkpoints import public_key_text
from audit.hashing import HashScheme, audit_key, linked_hash, netstring
from audit.models import AuditEvent
from catalog.api.evidence import RequestEvidenceApi
from catalog.evidence import EVIDENCE_ACTION, MANIFEST, SIGNATURE, evidence_package, evidence_verify
from catalog.models import Release
from core.errors import NotFound

# The route as portal.api.urls is to declare it, so the middleware stack (request ids, the refusal
# audit) runs around the view here; the real urlconf is the lead's to edit.
urlpatterns = [
    path(
        "api/v1/requests/<str:request_id>/evidence/",
        RequestEvidenceApi.as_view(),
        name="api-request-evidence",
    ),
    path("", include("portal.urls")),
]
URLS = pytest.mark.urls("catalog.tests.test_evidence")

CONTENTS = {
    "README.txt",
    "request.json",
    "tier.json",
    "decisions.json",
    "ledger.json",
    "card.json",
    "card.html",
    "report.json",
    "receipt.json",
    "audit_events.json",
    "audit_proof.json",
}


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def remanifest(files: dict[str, bytes], *, signer: Ed25519PrivateKey | None = None) -> dict[str, bytes]:
    """What a forger who edits a file does next: rewrite the manifest, and re-sign it with a key of
    their own when given one."""
    listed = {n: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for n, d in files.items()}
    listed = {n: e for n, e in listed.items() if n not in (MANIFEST, SIGNATURE)}
    manifest = json.dumps({"format": 1, "files": listed}).encode()
    out = {**files, MANIFEST: manifest}
    if signer is not None:
        digest = hashlib.sha256(manifest).hexdigest()
        message = json.dumps(
            {"kind": "synthgate.evidence.manifest", "v": 1, "manifest_sha256": digest},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        raw = signer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        out[SIGNATURE] = json.dumps(
            {
                "manifest_sha256": digest,
                "public_key": base64.urlsafe_b64encode(raw).decode(),
                "key_id": hashlib.sha256(raw).hexdigest()[:16],
                "signature": base64.urlsafe_b64encode(signer.sign(message)).decode(),
            }
        ).encode()
    return out


def verify_command(tmp_path: Path, data: bytes, *args: str) -> tuple[int, str]:
    path = tmp_path / "evidence.zip"
    path.write_bytes(data)
    out = StringIO()
    try:
        call_command("verify_evidence", str(path), *args, stdout=out)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


def events_of(files: dict[str, bytes]) -> list[dict[str, Any]]:
    return json.loads(files["audit_events.json"])["events"]


def with_events(files: dict[str, bytes], events: list[dict[str, Any]]) -> dict[str, bytes]:
    return {**files, "audit_events.json": json.dumps({"events": events}).encode()}


@pytest.fixture
def package(release: Release, audrey: Any) -> bytes:
    return evidence_package(request_id=release.request_id, actor=audrey)


# --- What is in it ---------------------------------------------------------------------------------


def test_an_auditors_package_holds_every_file_hashed_in_the_manifest_and_verifies(
    package: bytes, release: Release, tmp_path: Path
) -> None:
    files = unzip(package)

    assert set(files) == CONTENTS | {MANIFEST, SIGNATURE}
    listed = json.loads(files[MANIFEST])["files"]
    assert set(listed) == CONTENTS
    for name, entry in listed.items():
        assert hashlib.sha256(files[name]).hexdigest() == entry["sha256"], name
    tier = json.loads(files["tier.json"])
    assert tier["tier_reasons"] == release.request.tier_reasons
    assert tier["policy"]["number"] == release.request.policy.number
    assert hashlib.sha256(tier["policy"]["source"].encode()).hexdigest() == tier["policy"]["sha256"]
    decisions = json.loads(files["decisions.json"])["decisions"]
    assert [(d["reviewer_name"], d["decision"]) for d in decisions] == [("olivia", "approve")]
    assert json.loads(files["receipt.json"])["receipt"]["seed"] == 20240601
    assert json.loads(files["report.json"])["full_report"] is True
    assert json.loads(files["ledger.json"])["totals"]["ledger_owner"] == str(release.dataset.ledger_owner_id)
    actions = {e["action"] for e in events_of(files)}
    assert {"request.create", "request.submit", "release.publish"} <= actions
    assert json.loads(files["audit_proof.json"])["anchor"]["kind"] == "checkpoint"
    assert files["card.html"].startswith(b"<!doctype html>")
    assert release.title.encode() in files["card.html"] and b"&lt;h" not in files["card.html"]

    assert evidence_verify(package, public_key=public_key_text(), audit_key=audit_key()).ok
    code, out = verify_command(tmp_path, package, f"--public-key={public_key_text()}", "--with-audit-key")
    assert (code, out.splitlines()[-1]) == (0, "OK")


def test_a_key_beginning_with_a_dash_is_read_as_the_key_not_an_option(package: bytes, tmp_path: Path) -> None:
    # Keys are URL-safe base64, so one in 64 begins with "-": passed as --public-key=KEY it must be
    # read as the key (here the wrong one, so the signature check names it) and never as a flag.
    while True:
        raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        key = base64.urlsafe_b64encode(raw).decode()
        if key.startswith("-"):
            break

    code, out = verify_command(tmp_path, package, f"--public-key={key}")

    assert code == 1
    assert f"{SIGNATURE}: signed with a key other than the one given (--public-key)" in out


def test_the_download_is_audited_with_the_manifest_hash(
    package: bytes, audrey: Any, release: Release
) -> None:
    event = AuditEvent.objects.filter(action=EVIDENCE_ACTION, outcome="success").get()

    assert (event.actor_name, event.target_type, event.target_id) == (
        "audrey",
        "request",
        str(release.request_id),
    )
    assert event.details["manifest_sha256"] == hashlib.sha256(unzip(package)[MANIFEST]).hexdigest()


def test_the_api_answers_a_zip_attachment_to_a_privacy_officer(release: Release, olivia: Any) -> None:
    http = APIRequestFactory().get(f"/api/v1/requests/{release.request_id}/evidence/")
    force_authenticate(http, user=olivia)

    response = RequestEvidenceApi.as_view()(http, request_id=str(release.request_id))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="evidence-{release.request_id}.zip"'
    assert evidence_verify(response.content).ok
    assert (
        AuditEvent.objects.filter(action=EVIDENCE_ACTION, actor_name="olivia", outcome="success").count() == 1
    )


# --- Tampering ------------------------------------------------------------------------------------


def test_editing_any_file_fails_verification_naming_the_file(package: bytes, tmp_path: Path) -> None:
    files = unzip(package)
    decisions = json.loads(files["decisions.json"])
    decisions["decisions"][0]["comment"] = "Reviewed in full; no concerns."
    edited = rezip({**files, "decisions.json": json.dumps(decisions).encode()})

    code, out = verify_command(tmp_path, edited)

    assert code == 1
    assert "- decisions.json: SHA-256 differs from the manifest (the file was edited)" in out
    for name in CONTENTS:
        problems = evidence_verify(rezip({**files, name: files[name] + b" "})).problems
        assert problems == [f"{name}: SHA-256 differs from the manifest (the file was edited)"], name


def test_an_added_or_missing_file_or_a_rewritten_manifest_is_caught(package: bytes) -> None:
    files = unzip(package)

    added = evidence_verify(rezip({**files, "extra.json": b"{}"})).problems
    missing = evidence_verify(rezip({n: d for n, d in files.items() if n != "ledger.json"})).problems
    edited = {**files, "ledger.json": b'{"entries": []}'}
    remanifested = evidence_verify(rezip(remanifest(edited))).problems

    assert added == ["extra.json: not listed in the manifest (a file was added)"]
    assert missing == ["ledger.json: listed in the manifest but missing"]
    assert remanifested == [f"{MANIFEST}: its SHA-256 differs from the signed one (the manifest was edited)"]


def test_a_deleted_audit_event_is_caught_even_with_a_rewritten_manifest(package: bytes) -> None:
    files = unzip(package)
    events = events_of(files)
    dropped = with_events(files, [e for e in events if e["action"] != "request.submit"])

    plain = evidence_verify(rezip(dropped)).problems
    signer = Ed25519PrivateKey.generate()
    forged = evidence_verify(rezip(remanifest(dropped, signer=signer)), public_key=public_key_text()).problems
    unpinned = evidence_verify(rezip(remanifest(dropped, signer=signer))).problems

    assert plain == ["audit_events.json: SHA-256 differs from the manifest (the file was edited)"]
    assert f"{SIGNATURE}: signed with a key other than the one given (--public-key)" in forged
    # Without the portal's key pinned the forger's signature passes, but the proof still lists
    # the event that is gone.
    seq = next(e["seq"] for e in events if e["action"] == "request.submit")
    assert unpinned == [f"audit_events.json: event seq {seq} is listed in audit_proof.json but missing"]


def test_a_changed_audit_event_is_caught_by_its_links_or_its_hash(package: bytes) -> None:
    files = unzip(package)
    events = events_of(files)
    signer = Ed25519PrivateKey.generate()
    # A field edited, the package re-manifested and re-signed by the forger: the event's own
    # canonical text (scheme 3) no longer holds that field, offline, without any key.
    renamed = [dict(e, actor_name="someone-else") if e["action"] == "request.submit" else e for e in events]
    forged = rezip(remanifest(with_events(files, renamed), signer=signer))
    # The text edited to match, and its hash recomputed (no key needed): the links disagree.
    submit = next(e for e in events if e["action"] == "request.submit")
    assert submit["hash_scheme"] == HashScheme.LINKED
    text = submit["canonical"].replace(netstring(submit["actor_name"]), netstring("someone-else"), 1)
    recanonical = [
        dict(e, actor_name="someone-else", canonical=text, hash=linked_hash(text)) if e is submit else e
        for e in events
    ]
    relinked = rezip(remanifest(with_events(files, recanonical), signer=signer))
    # Only the tag left as it was: the audit key's holder sees it.
    retext = [dict(e, canonical=text) if e is submit else e for e in events]
    seq = submit["seq"]

    edited = f"audit_events.json: event seq {seq} does not match its hash (a field was edited)"
    assert evidence_verify(forged).problems == [edited]
    assert evidence_verify(rezip(remanifest(with_events(files, retext), signer=signer))).problems == [edited]
    assert evidence_verify(relinked).problems == [
        f"audit_events.json: event seq {seq} does not match its link in audit_proof.json"
    ]
    assert evidence_verify(package, audit_key=audit_key()).ok
    retagged = [dict(e, tag="0" * 64) if e is submit else e for e in events]
    assert evidence_verify(rezip(remanifest(with_events(files, retagged), signer=signer))).ok
    assert evidence_verify(
        rezip(remanifest(with_events(files, retagged), signer=signer)), audit_key=audit_key()
    ).problems == [edited]


def test_an_event_dropped_with_its_link_breaks_the_run_of_links(package: bytes) -> None:
    files = unzip(package)
    events = events_of(files)
    proof = json.loads(files["audit_proof.json"])
    seq = next(e["seq"] for e in events if e["action"] == "request.submit")
    proof["event_seqs"].remove(seq)
    proof["links"]["entries"] = [link for link in proof["links"]["entries"] if link[0] != seq]
    dropped = {
        **with_events(files, [e for e in events if e["seq"] != seq]),
        "audit_proof.json": json.dumps(proof).encode(),
    }

    problems = evidence_verify(rezip(remanifest(dropped, signer=Ed25519PrivateKey.generate()))).problems

    assert problems == ["audit_proof.json: the links are not one unbroken run up to the anchor"]


def test_against_the_live_log_a_package_must_match_a_recorded_download(
    package: bytes, tmp_path: Path
) -> None:
    files = unzip(package)
    events = events_of(files)
    proof = json.loads(files["audit_proof.json"])
    seq = next(e["seq"] for e in events if e["action"] == "request.submit")
    proof["event_seqs"].remove(seq)
    # The event is dropped and the proof no longer lists it, its link kept: consistent offline,
    # even with the audit key, once re-signed (as by someone holding the signing key).
    dropped = {
        **with_events(files, [e for e in events if e["seq"] != seq]),
        "audit_proof.json": json.dumps(proof).encode(),
    }
    forged = rezip(remanifest(dropped, signer=Ed25519PrivateKey.generate()))

    ok_code, ok_out = verify_command(tmp_path, package, "--against-log")
    code, out = verify_command(tmp_path, forged, "--against-log")

    assert evidence_verify(forged, audit_key=audit_key()).ok
    assert (ok_code, ok_out.splitlines()[-1]) == (0, "OK")
    assert code == 1
    assert f"- {MANIFEST}: no download in the audit log recorded this manifest" in out


# --- Who may download ------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["alice", "bob", "sam", "ada"])
def test_other_roles_even_the_requester_are_refused_and_audited(
    submitted_request: Any, request: pytest.FixtureRequest, persona: str
) -> None:
    user = request.getfixturevalue(persona)

    with pytest.raises(NotFound):
        evidence_package(request_id=submitted_request.pk, actor=user)

    denied = AuditEvent.objects.get(action=EVIDENCE_ACTION, actor_name=persona)
    assert (denied.outcome, denied.target_id, denied.details) == (
        "denied",
        str(submitted_request.pk),
        {"reason": "role"},
    )
    assert not AuditEvent.objects.filter(action=EVIDENCE_ACTION, outcome="success").exists()


def test_the_api_answers_404_to_the_requester(submitted_request: Any, alice: Any) -> None:
    http = APIRequestFactory().get(f"/api/v1/requests/{submitted_request.pk}/evidence/")
    force_authenticate(http, user=alice)

    response = RequestEvidenceApi.as_view()(http, request_id=str(submitted_request.pk))

    assert response.status_code == 404
    assert (
        AuditEvent.objects.filter(action=EVIDENCE_ACTION, actor_name="alice", outcome="denied").count() == 1
    )


def test_an_unknown_or_malformed_id_is_404_for_an_auditor_too(audrey: Any, db: Any) -> None:
    for request_id in ("00000000-0000-0000-0000-000000000000", "../etc/passwd"):
        with pytest.raises(NotFound):
            evidence_package(request_id=request_id, actor=audrey)

    targets = sorted(AuditEvent.objects.filter(action=EVIDENCE_ACTION).values_list("target_id", flat=True))
    assert targets == ["00000000-0000-0000-0000-000000000000", "malformed-id"]


def test_a_request_without_a_release_still_exports_and_verifies(submitted_request: Any, olivia: Any) -> None:
    files = unzip(evidence_package(request_id=submitted_request.pk, actor=olivia))

    assert json.loads(files["card.json"])["release"] is None
    assert evidence_verify(rezip(files)).ok


@URLS
def test_over_http_oversight_gets_the_zip_and_everyone_else_one_audited_404(
    api: Any, submitted_request: Any, request: pytest.FixtureRequest
) -> None:
    url = f"/api/v1/requests/{submitted_request.pk}/evidence/"
    for persona in ("olivia", "audrey"):
        client = api(request.getfixturevalue(persona))
        for accept in ("application/zip", "*/*"):
            response = client.get(url, HTTP_ACCEPT=accept)
            assert (response.status_code, response["Content-Type"]) == (200, "application/zip"), persona
            assert evidence_verify(response.content).ok
    for persona in ("alice", "bob", "charlie", "sam", "ada"):
        before = AuditEvent.objects.filter(outcome="denied", actor_name=persona).count()
        response = api(request.getfixturevalue(persona)).get(url)
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found"), persona
        assert AuditEvent.objects.filter(outcome="denied", actor_name=persona).count() == before + 1, persona
    assert api(None).get(url).status_code == 401
