"""Canary scan: unique marker values in a source file must never surface outside the data path.

The file carries markers in a categorical column and as junk in a date column (which makes SDV's
datetime transformer fail, quoting the bad value in its exception). After intake, a request, a
failing job in a real worker and a rejected upload, we scan worker and web logs, audit rows,
task messages, the job's stored error and every HTTP response: zero hits.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pandas as pd
import pytest

from audit.models import AuditEvent
from conftest import PASSWORD, small_flchain_csv
from generation.models import SynthesisJob
from tests.http import ApiClient, wait_for

pytestmark = pytest.mark.integration
CANARIES = ["ZXQ-CANARY-5521", "ZXQ-CANARY-9034"]


def _canary_csv() -> bytes:
    frame = pd.read_csv(io.BytesIO(small_flchain_csv(400)))
    frame["visit_date"] = pd.date_range("2001-01-01", periods=len(frame), freq="D").strftime("%Y-%m-%d")
    # 2% junk: still profiled as a date column, and enough rows that the 20% holdout split cannot
    # take them all away from the training rows (the synthesizer must see some to fail on them).
    frame.loc[[5, 17, 60, 99, 150, 222, 301, 377], "visit_date"] = CANARIES * 4
    frame.loc[[3, 4, 9, 11, 12, 30], "chapter"] = CANARIES[0]
    return frame.to_csv(index=False).encode()


def test_marker_values_never_leak(
    live_server: Any,
    celery_worker_process: Any,
    sam: Any,
    alice: Any,
    olivia: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from portal.celery import app

    sent: list[str] = []
    original_send = app.send_task
    monkeypatch.setattr(
        app, "send_task", lambda name, **kw: (sent.append(repr((name, kw))), original_send(name, **kw))[1]
    )
    caplog.set_level(logging.DEBUG)
    responses: list[str] = []
    steward = ApiClient.signed_in(live_server.url, "sam", PASSWORD)
    scientist = ApiClient.signed_in(live_server.url, "alice", PASSWORD)
    scientist_auth = scientist.session.headers["Authorization"]
    officer = ApiClient.signed_in(live_server.url, "olivia", PASSWORD)

    def keep(response: Any) -> Any:
        # Error responses from anyone, and everything the scientist (who has no custody) receives.
        # The steward's own 200 responses carry the custodian profile by design.
        if response.status_code >= 400 or response.request.headers.get("Authorization") == scientist_auth:
            responses.append(response.text)
        return response

    bad = keep(
        steward.post(
            "/datasets/",
            data={"name": "bad", "epsilon_cap": "1"},
            files={"file": ("bad.csv", f"a,b\n1,2\n3,{CANARIES[1]},9\n".encode())},
        )
    )
    assert bad.status_code == 400
    created = keep(
        steward.post(
            "/datasets/",
            data={"name": "canary", "epsilon_cap": "1"},
            files={"file": ("c.csv", _canary_csv())},
        )
    ).json()
    assert next(c for c in created["columns"] if c["name"] == "visit_date")["dtype"] == "datetime"
    keep(
        steward.patch(
            f"/datasets/{created['id']}/columns/",
            json={"columns": [{"name": "chapter", "categories": ["Circulatory", "Neoplasms"]}]},
        )
    )
    assert keep(steward.post(f"/datasets/{created['id']}/signoff/")).json()["status"] == "ready"
    request = keep(
        scientist.post(
            "/requests/",
            json={
                "dataset": created["id"],
                "title": "Canary",
                "purpose": "p",
                "intended_use": "u",
                "audience": "internal",
                "columns": ["age", "visit_date", "kappa"],
                "synthesizer": "gaussian_copula",
                "rows": 200,
            },
        )
    ).json()
    keep(scientist.post(f"/requests/{request['id']}/submit/"))
    keep(officer.post(f"/requests/{request['id']}/decisions/", json={"decision": "approve"}))
    final = wait_for(
        lambda: (lambda b: b if b["status"] in {"failed", "published", "gate_failed"} else None)(
            keep(scientist.get(f"/requests/{request['id']}/")).json()
        ),
        timeout=120,
        interval=1.0,
    )
    assert final["status"] == "failed", "the junk dates were meant to make synthesis fail"
    keep(officer.get("/audit/events/", params={"page_size": 500}))

    job = SynthesisJob.objects.get()
    haystacks = {
        "worker log": celery_worker_process.log_path.read_text(),
        "web log": caplog.text,
        "task messages": "\n".join(sent),
        "audit rows": "\n".join(
            repr((e.target_id, e.details, e.actor_name)) for e in AuditEvent.objects.all()
        ),
        "job error": job.error_code + job.error_message,
        "error responses and the scientist's responses": "\n".join(responses),
    }
    assert sent, "the pipeline task should have been sent"
    assert len(responses) >= 5
    for where, text in haystacks.items():
        for canary in CANARIES:
            assert canary not in text, f"{canary} leaked into {where}"
