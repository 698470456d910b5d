from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals import rules
from approvals.api.serializers import (
    AttemptOutputSerializer,
    AttemptReportOutputSerializer,
    DecisionInputSerializer,
    DecisionOutputSerializer,
    GateOverrideDecisionInputSerializer,
    GateOverrideInputSerializer,
    GateOverrideOutputSerializer,
    PreviewOutputSerializer,
    PrivacyRetryOutputSerializer,
    RequestInputSerializer,
    RequestOutputSerializer,
    RequestPreviewInputSerializer,
    RetryAskInputSerializer,
    RetryDecisionInputSerializer,
    UploadInputSerializer,
)
from approvals.bakeoff import score
from approvals.choices import RequestKind, RequestStatus, TierLevel
from approvals.dp import dp_gate_visible_to, dp_metrics_visible_to
from approvals.models import GenerationRequest
from approvals.selectors import (
    REQUEST_ORDERINGS,
    request_filters_from,
    requests_filtered,
    requests_listed_for,
)
from approvals.services import (
    RequestInput,
    gate_override_decline,
    gate_override_propose,
    request_cancel,
    request_create,
    request_decide_outcome,
    request_get_for,
    request_preview,
    request_regenerate,
    request_submit,
    request_update,
    request_upload_synthetic,
    retry_approve,
    retry_ask,
    retry_refuse,
)
from approvals.services.bakeoffs import candidate_rows
from audit.services import audit_denied
from core.errors import PermissionDenied, ValidationFailed
from core.pagination import KeysFirst, PortalPagination, paginated_response
from core.roles import PortalUser, Role, has_role
from generation.synthesizers import is_dp_synthesizer
from generation.uploads import upload_was_too_large


def _may_act(
    request: Request, request_id: str, rule: Callable[[Any, GenerationRequest], str], action: str = ""
) -> None:
    """404 for a request the caller may not see, then 403 when `rule` (a "who" piece of
    approvals.rules) refuses them: both before the body is read, so a refused caller gets the same
    answer whatever they send. The service checks again on the locked row."""
    item = request_get_for(actor=request.user, request_id=request_id)
    if refusal := rule(request.user, item):
        if action:  # the service's own, more specific row (the middleware then writes none)
            audit_denied(
                actor=request.user, action=action, target_type="request", target_id=item.pk, reason=refusal
            )
        raise PermissionDenied(refusal)


def _may_file(request: Request) -> None:
    # Filing (and previewing what filing would decide) is for data scientists, whatever is sent:
    # the services' rule (request_create, request_preview), checked before the body is read.
    if not has_role(request.user, Role.DATA_SCIENTIST):
        raise PermissionDenied("Only data scientists can file generation requests.", code="not_scientist")


def _render(request: Request, request_obj: object) -> dict:
    # The caller goes in the context: the request's `actions` are what this caller may do.
    return RequestOutputSerializer(request_obj, context={"request": request}).data


_LIST_PARAMETERS = [
    OpenApiParameter("q", str, description="Case-insensitive search in title and purpose."),
    OpenApiParameter("status", str, enum=list(RequestStatus.values)),
    OpenApiParameter("tier", str, enum=list(TierLevel.values)),
    OpenApiParameter("kind", str, enum=list(RequestKind.values), description="What the request asks for."),
    OpenApiParameter("dataset", OpenApiTypes.UUID, description="Source dataset id."),
    OpenApiParameter("team", int, description="The requester's team id when filed."),
    OpenApiParameter("created_from", OpenApiTypes.DATE, description="Filed on or after this day."),
    OpenApiParameter("created_to", OpenApiTypes.DATE, description="Filed on or before this day."),
    OpenApiParameter("ordering", str, enum=list(REQUEST_ORDERINGS), description="Newest first by default."),
]


class RequestListCreateApi(APIView):
    # Read by drf-spectacular (the list is documented as API.md's paginated shape) and by
    # paginated_response's page size rules.
    pagination_class = PortalPagination

    @extend_schema(parameters=_LIST_PARAMETERS, responses=RequestOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters, errors = request_filters_from(request.query_params)
        if errors:
            raise ValidationFailed("; ".join(errors.values()), fields=errors)
        # Only narrows what the caller may see; every per-request field of a page's rows reads
        # from what requests_listed_for fetched at once, so a page costs the same number of
        # queries for 3 requests as for 300 (approvals/tests/test_request_list_queries.py).
        items = requests_filtered(requests_listed_for(user=request.user), filters)
        return paginated_response(
            request,
            KeysFirst(items),
            lambda rows: RequestOutputSerializer(rows, many=True, context={"request": request}).data,
            view=self,
        )

    @extend_schema(request=RequestInputSerializer, responses={201: RequestOutputSerializer})
    def post(self, request: Request) -> Response:
        _may_file(request)
        payload = RequestInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        created = request_create(actor=request.user, data=RequestInput.from_data(payload.validated_data))
        return Response(_render(request, created), status=201)


class RequestDetailApi(APIView):
    @extend_schema(responses=RequestOutputSerializer)
    def get(self, request: Request, request_id: str) -> Response:
        return Response(_render(request, request_get_for(actor=request.user, request_id=request_id)))

    @extend_schema(request=RequestInputSerializer, responses=RequestOutputSerializer)
    def put(self, request: Request, request_id: str) -> Response:
        """Replace a draft's (or a changes-requested request's) fields; resubmit to re-tier it."""
        _may_act(request, request_id, _editor_refusal)
        payload = RequestInputSerializer(data=request.data, context={"editing": True})
        payload.is_valid(raise_exception=True)
        updated = request_update(
            actor=request.user, request_id=request_id, data=RequestInput.from_data(payload.validated_data)
        )
        return Response(_render(request, updated))


def _editor_refusal(actor: PortalUser, item: GenerationRequest) -> str:
    return rules.requester_only_refusal(actor, item, "edit")


class RequestPreviewApi(APIView):
    @extend_schema(request=RequestPreviewInputSerializer, responses=PreviewOutputSerializer)
    def post(self, request: Request) -> Response:
        """What the active policy would decide if this request were submitted now (no writes)."""
        _may_file(request)
        payload = RequestPreviewInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        preview = request_preview(actor=request.user, dataset_id=data.pop("dataset"), **data)
        if preview is None:
            raise ValidationFailed("Choose a dataset you may request from.", fields={"dataset": "unknown"})
        a = preview.assessment
        body = {
            "level": a.level,
            "reasons": a.reasons,
            "rules": [{"id": f.id, "tier": f.tier, "message": f.message} for f in a.fired],
            "required_approvals": a.required_approvals,
            "controls": a.controls,
            "suggestions": [{"change": s.change, "level": s.level} for s in preview.suggestions],
            "policy_version": str(preview.policy_number),
            "budget": preview.budget.as_dict() if preview.budget else None,
            "dp_domain_refusal": preview.domain_refusal,
        }
        return Response(PreviewOutputSerializer(body).data)


class RequestSubmitApi(APIView):
    @extend_schema(request=None, responses=RequestOutputSerializer)
    def post(self, request: Request, request_id: str) -> Response:
        return Response(_render(request, request_submit(actor=request.user, request_id=request_id)))


class RequestCancelApi(APIView):
    @extend_schema(request=None, responses=RequestOutputSerializer)
    def post(self, request: Request, request_id: str) -> Response:
        return Response(_render(request, request_cancel(actor=request.user, request_id=request_id)))


class RequestDecisionApi(APIView):
    @extend_schema(
        request=DecisionInputSerializer,
        responses={201: DecisionOutputSerializer, 200: DecisionOutputSerializer},
    )
    def post(self, request: Request, request_id: str) -> Response:
        """201 with the new decision; 200 with the earlier one when the reviewer repeats the
        decision they already made this round (a no-op)."""
        _may_act(request, request_id, rules.reviewer_refusal, action="request.decide")
        payload = DecisionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        decision, created = request_decide_outcome(
            actor=request.user,
            request_id=request_id,
            decision=payload.validated_data["decision"],
            comment=payload.validated_data["comment"],
            conditions=payload.validated_data["conditions"],
        )
        return Response(DecisionOutputSerializer(decision).data, status=201 if created else 200)


class RequestRegenerateApi(APIView):
    @extend_schema(request=None, responses=RequestOutputSerializer)
    def post(self, request: Request, request_id: str) -> Response:
        """Generate again after a failed gate or job: a new attempt (policy-limited), a new seed,
        and for DP synthesizers a new reservation of the request's epsilon (409 if it does not fit).
        After a failed privacy check: 409 `privacy_retry_needs_officer` and nothing is reserved;
        ask for a retry (`retry/`) and a privacy officer approves it (`retry/decisions/`)."""
        return Response(_render(request, request_regenerate(actor=request.user, request_id=request_id)))


class RequestRetryAskApi(APIView):
    @extend_schema(request=RetryAskInputSerializer, responses={201: PrivacyRetryOutputSerializer})
    def post(self, request: Request, request_id: str) -> Response:
        """The requester asks a privacy officer to approve a retry after a failed privacy check
        (nothing is reserved until an officer approves; asking twice returns the pending ask)."""
        _may_act(request, request_id, rules.retry_asker_refusal)
        payload = RetryAskInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        retry = retry_ask(actor=request.user, request_id=request_id, reason=payload.validated_data["reason"])
        return Response(PrivacyRetryOutputSerializer(retry).data, status=201)


class RequestRetryDecisionApi(APIView):
    @extend_schema(request=RetryDecisionInputSerializer, responses=RequestOutputSerializer)
    def post(self, request: Request, request_id: str) -> Response:
        """A privacy officer approves (queues the attempt and reserves its epsilon) or refuses a
        retry after a failed privacy check, with a comment of at least 20 characters."""
        _may_act(request, request_id, rules.retry_decider_refusal)
        payload = RetryDecisionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        decide = retry_approve if data["decision"] == "approve" else retry_refuse
        return Response(
            _render(request, decide(actor=request.user, request_id=request_id, comment=data["comment"]))
        )


class RequestUploadApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": UploadInputSerializer}, responses={202: RequestOutputSerializer}
    )
    def post(self, request: Request, request_id: str) -> Response:
        """Upload a synthetic file made elsewhere for an approved `external_upload` request; its
        validation is queued (202) and it is published only if it passes the release gate."""
        _may_act(request, request_id, rules.uploader_refusal)
        files = request.FILES  # parses the body; the size cap is enforced while it streams
        if upload_was_too_large(request):
            raise ValidationFailed(
                "The file is larger than the upload limit; upload fewer rows.",
                code="file_too_large",
                fields={"file": "too_large"},
            )
        updated = request_upload_synthetic(
            actor=request.user, request_id=request_id, uploaded_file=files.get("file")
        )
        return Response(_render(request, updated), status=202)


class GateOverrideProposeApi(APIView):
    @extend_schema(request=GateOverrideInputSerializer, responses={201: GateOverrideOutputSerializer})
    def post(self, request: Request, request_id: str) -> Response:
        """A privacy officer (not the requester) proposes publishing a gate-failed release."""
        _may_act(request, request_id, rules.override_officer_refusal)
        payload = GateOverrideInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        override = gate_override_propose(
            actor=request.user, request_id=request_id, justification=payload.validated_data["justification"]
        )
        return Response(GateOverrideOutputSerializer(override).data, status=201)


class GateOverrideDeclineApi(APIView):
    @extend_schema(request=GateOverrideDecisionInputSerializer, responses=GateOverrideOutputSerializer)
    def post(self, request: Request, request_id: str) -> Response:
        _may_act(request, request_id, rules.override_officer_refusal)
        payload = GateOverrideDecisionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        override = gate_override_decline(
            actor=request.user, request_id=request_id, comment=payload.validated_data["comment"]
        )
        return Response(GateOverrideOutputSerializer(override).data)


class RequestAttemptsApi(APIView):
    @extend_schema(responses=AttemptReportOutputSerializer(many=True))
    def get(self, request: Request, request_id: str) -> Response:
        """Every generation attempt with its gate and metrics as the caller may see them (values
        for oversight roles; pass/fail and reasons for others): what an override is decided on.
        A bake-off attempt lists each candidate with its own gate, metrics and scores."""
        item = request_get_for(actor=request.user, request_id=request_id)
        rows = []
        for attempt in item.attempts.select_related("job", "job__validation"):
            runs = list(attempt.candidates.select_related("job", "job__validation"))
            rows.append(
                {
                    **AttemptOutputSerializer(attempt).data,
                    **_job_report(request.user, attempt.job, item.kind),
                    "job": attempt.job_id,
                    "candidates": [_candidate(request.user, row) for row in candidate_rows(runs)]
                    if runs
                    else None,
                }
            )
        return Response(AttemptReportOutputSerializer(rows, many=True).data)


def _job_report(user: Any, job: Any, kind: str = RequestKind.SYNTHETIC_TABLE) -> dict[str, Any]:
    # For a DP job (a DP model's included), values computed on the real rows go to custodians only.
    # A job's synthesizer is its request's (a bake-off candidate's own for a bake-off).
    is_dp = kind == RequestKind.DP_MODEL or is_dp_synthesizer(job.synthesizer)
    report = getattr(job, "validation", None)
    if report is None:
        return {"gate": None, "metrics": None}
    gate = dp_gate_visible_to(user=user, gate={"passed": report.passed, "checks": report.checks}, is_dp=is_dp)
    metrics = dp_metrics_visible_to(user=user, metrics=report.metrics, checks=report.checks, is_dp=is_dp)
    return {"gate": gate, "metrics": metrics}


def _candidate(user: Any, row: dict[str, Any]) -> dict[str, Any]:
    run = row["run"]
    report = _job_report(user, run.job)
    visible = score((report["gate"] or {}).get("checks") or [])
    return {
        "index": row["index"],
        "synthesizer": row["synthesizer"],
        "epsilon": str(row["epsilon"]) if row["epsilon"] is not None else None,
        "options": row["options"],
        "job": str(run.job_id),
        "state": row["state"],
        "gate_passed": row["passed"] if row["validated"] else None,
        "failed_checks": row["failed_checks"],
        "utility_score": visible.utility,
        "privacy_risk": visible.privacy_risk,
        "recommended": row["recommended"],
        "chosen": row["chosen"],
        **report,
    }
