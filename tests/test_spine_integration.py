"""The whole spine over HTTP, against a live server and a real Celery worker process.

In the SQLite stage this uses the filesystem broker; in the PostgreSQL/Redis stage of
`make test` the same test runs on PostgreSQL with Redis as the broker.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from conftest import PASSWORD, SAFE_COLUMNS, small_flchain_csv
from tests.http import ApiClient, wait_for

pytestmark = pytest.mark.integration


def test_request_travels_from_upload_to_download_through_a_real_worker(
    live_server: Any, celery_worker_process: Any, sam: Any, alice: Any, olivia: Any, charlie: Any
) -> None:
    steward = ApiClient.signed_in(live_server.url, "sam", PASSWORD)
    scientist = ApiClient.signed_in(live_server.url, "alice", PASSWORD)
    officer = ApiClient.signed_in(live_server.url, "olivia", PASSWORD)
    outsider = ApiClient.signed_in(live_server.url, "charlie", PASSWORD)

    uploaded = steward.post(
        "/datasets/",
        data={"name": "flchain", "epsilon_cap": "2.5"},
        files={"file": ("flchain.csv", small_flchain_csv(800), "text/csv")},
    )
    assert uploaded.status_code == 201, uploaded.text
    dataset = uploaded.json()
    assert dataset["rows"] == 800 and dataset["status"] == "pending_review"
    signed = steward.post(f"/datasets/{dataset['id']}/signoff/")
    assert signed.status_code == 200 and signed.json()["status"] == "ready", signed.text
    budget = {k: dataset["budget"][k] for k in ("epsilon_cap", "epsilon_spent", "epsilon_remaining")}
    assert budget == {"epsilon_cap": 2.5, "epsilon_spent": 0.0, "epsilon_remaining": 2.5}

    created = scientist.post(
        "/requests/",
        json={
            "dataset": dataset["id"],
            "title": "Mortality prototype",
            "purpose": "Prototype a model",
            "intended_use": "Notebook exploration",
            "audience": "internal",
            "columns": SAFE_COLUMNS,
            "synthesizer": "gaussian_copula",
            "rows": 500,
            "epsilon": None,
        },
    )
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    assert created.json()["status"] == "draft"

    submitted = scientist.post(f"/requests/{request_id}/submit/")
    assert submitted.status_code == 200
    assert submitted.json()["status"] == "in_review"
    assert submitted.json()["tier"]["level"] in {"low", "medium", "high"}
    assert submitted.json()["tier"]["reasons"]

    own = scientist.post(f"/requests/{request_id}/decisions/", json={"decision": "approve"})
    assert own.status_code == 403
    assert scientist.get(f"/requests/{request_id}/").json()["status"] == "in_review"

    approved = officer.post(
        f"/requests/{request_id}/decisions/",
        json={"decision": "approve", "comment": "Minimum necessary columns."},
    )
    assert approved.status_code == 201, approved.text

    def published() -> dict[str, Any] | None:
        body = scientist.get(f"/requests/{request_id}/").json()
        assert body["status"] not in {"failed", "gate_failed"}, body
        return body if body["status"] == "published" else None

    final = wait_for(published, timeout=150, interval=1.0)
    assert final["job"]["state"] == "succeeded"
    assert final["job"]["progress"] == 1.0
    release_id = final["release"]

    release = scientist.get(f"/releases/{release_id}/").json()
    assert release["gate"]["passed"] is True
    assert {c["name"] for c in release["gate"]["checks"]} >= {"column_shape_similarity", "exact_copy_rate"}
    assert release["epsilon"] is None and release["is_dp"] is False

    download = scientist.get(f"/releases/{release_id}/download/")
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in download.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert len(rows) == 500 and set(rows[0]) == set(SAFE_COLUMNS)

    assert outsider.get(f"/releases/{release_id}/").status_code == 404
    assert outsider.get(f"/releases/{release_id}/download/").status_code == 404
    assert outsider.get(f"/requests/{request_id}/").status_code == 404

    verdict = officer.post("/audit/verify/")  # GET shows the last recorded run; POST verifies now
    assert verdict.status_code == 200, verdict.text
    assert verdict.json()["ok"] is True
    actions = {
        e["action"]
        for e in officer.get("/audit/events/", params={"target": f"release:{release_id}"}).json()["results"]
    }
    assert {"release.publish", "release.download"} <= actions
