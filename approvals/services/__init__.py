"""Services of the approvals app (writes). Split by concern; import from here."""

from approvals.services.attempts import (
    attempts_allowed,
    attempts_used,
    request_regenerate,
    request_upload_synthetic,
)
from approvals.services.decisions import request_decide, request_decide_outcome, round_quorum
from approvals.services.overrides import (
    audit_override_refusal,
    gate_override_decide,
    gate_override_decline,
    gate_override_propose,
    request_published_by_override,
)
from approvals.services.policy import (
    PolicyInvalid,
    policy_active,
    policy_diff,
    policy_ensure_active,
    policy_for_preview,
    policy_parse,
    policy_publish,
)
from approvals.services.requests import (
    RequestInput,
    request_cancel,
    request_create,
    request_follow_job,
    request_get_for,
    request_submit,
    request_update,
)
from approvals.services.retries import retry_approve, retry_ask, retry_pending, retry_refuse
from approvals.services.tiering import (
    MAX_ROWS,
    Preview,
    facts_for,
    request_assess,
    request_facts,
    request_preview,
)

__all__ = [
    "attempts_allowed",
    "attempts_used",
    "audit_override_refusal",
    "gate_override_decide",
    "gate_override_decline",
    "gate_override_propose",
    "request_published_by_override",
    "request_regenerate",
    "retry_approve",
    "retry_ask",
    "retry_pending",
    "retry_refuse",
    "request_upload_synthetic",
    "MAX_ROWS",
    "PolicyInvalid",
    "Preview",
    "RequestInput",
    "facts_for",
    "policy_active",
    "policy_diff",
    "policy_ensure_active",
    "policy_for_preview",
    "policy_parse",
    "policy_publish",
    "request_assess",
    "request_cancel",
    "request_create",
    "request_decide",
    "request_decide_outcome",
    "request_facts",
    "request_follow_job",
    "request_get_for",
    "request_preview",
    "request_submit",
    "request_update",
    "round_quorum",
]
