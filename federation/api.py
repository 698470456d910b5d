"""The federated-study API, /api/v1/studies/: one view per operation, input validated at the edge."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from django.db.models import Q
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditEvent
from audit.services import audit_denied, audit_record
from core.errors import PermissionDenied
from core.pagination import PortalPagination, paginated_response
from core.roles import EXPORTS_EVIDENCE, Role, acting_user, has_role
from federation.forms import study_input
from federation.models import DropoutPolicy, ModelFamily, Study
from federation.selectors import studies_visible_to
from federation.services import (
    model_card,
    study_cancel,
    study_decide,
    study_file,
    study_get_for,
    study_submit,
)


class StudyInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    purpose = serializers.CharField(max_length=5000)
    sites = serializers.ListField(child=serializers.UUIDField(), min_length=2, max_length=20)
    features = serializers.ListField(
        child=serializers.CharField(max_length=255), min_length=1, max_length=200
    )
    target = serializers.CharField(max_length=255)
    rounds = serializers.IntegerField(min_value=1, max_value=200)
    min_sites = serializers.IntegerField(min_value=2, max_value=20)
    local_epochs = serializers.IntegerField(min_value=1, max_value=50, default=1)
    learning_rate = serializers.FloatField(min_value=1e-6, max_value=10.0, default=0.1)
    clipping_norm = serializers.FloatField(min_value=1e-6)
    noise_multiplier = serializers.FloatField(min_value=0.0)
    delta = serializers.CharField(max_length=32, default="1e-8")
    secure_aggregation = serializers.BooleanField(default=True)
    dropout_policy = serializers.ChoiceField(choices=DropoutPolicy.values, default=DropoutPolicy.QUORUM)
    model_family = serializers.ChoiceField(
        choices=ModelFamily.values, default=ModelFamily.LOGISTIC_REGRESSION
    )


class StudyDecisionInputSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject"])
    comment = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


def study_json(study: Study) -> dict[str, Any]:
    return {
        "id": str(study.pk),
        "title": study.title,
        "requester": study.requester_name,
        "status": study.status,
        "features": study.features,
        "target": study.target,
        "model_family": study.model_family,
        "rounds": study.rounds,
        "rounds_completed": study.rounds_completed,
        "min_sites": study.min_sites,
        "clipping_norm": study.clipping_norm,
        "noise_multiplier": study.noise_multiplier,
        "privacy_unit": "site",
        "secure_aggregation": study.secure_aggregation,
        "dropout_policy": study.dropout_policy,
        # Each site's ledger reserves and is debited the per-record epsilon; the accountant's per-site
        # figure (add or remove one site) is stated beside it and never debited.
        "ledger_epsilon_unit": "record",
        "epsilon_reserved_per_record": str(study.epsilon) if study.epsilon is not None else None,
        "epsilon_debited_per_record": str(study.epsilon_spent) if study.epsilon_spent is not None else None,
        "epsilon_per_site": str(study.epsilon_per_site) if study.epsilon_per_site is not None else None,
        "delta": str(study.delta) if study.delta is not None else None,
        "tier": study.tier_level,
        "tier_reasons": study.tier_reasons,
        "progress": study.progress,
        "cancel_requested": study.cancel_requested,
        "error_code": study.error_code,
        "model_sha256": study.model_sha256,
        "release": str(study.release_id) if study.release_id else None,  # its catalog release
        "sites": [
            {
                "site": s.site.name,
                "steward": s.site.steward_name,
                "decision": s.decision,
                "schema_hash": s.schema_hash,
                "epsilon_spent_micro": s.spent_micro,
                "gate_passed": s.gate_passed,
                "gate_checks": s.gate_checks,
            }
            for s in study.sites.select_related("site")
        ],
        "rounds_log": [
            {
                "round": r.number,
                "sites": r.sites,
                "excluded": r.excluded,
                "norm_summary": r.norm_summary,
                "clipped_fraction": r.clipped_fraction,
                "epsilon_per_record": str(r.epsilon) if r.epsilon is not None else None,
                "epsilon_per_site": str(r.epsilon_per_site) if r.epsilon_per_site is not None else None,
                "model_sha256": r.model_sha256,
            }
            for r in study.round_log.all()
        ],
    }


class StudyListCreateApi(APIView):
    pagination_class = PortalPagination

    @extend_schema(operation_id="studies_list", responses=None)
    def get(self, request: Request) -> Response:
        items = studies_visible_to(user=acting_user(request.user)).order_by("-created_at")
        return paginated_response(request, items, lambda rows: [study_json(s) for s in rows], view=self)

    @extend_schema(request=StudyInputSerializer, responses=None)
    def post(self, request: Request) -> Response:
        if not has_role(acting_user(request.user), Role.DATA_SCIENTIST):
            audit_denied(
                actor=acting_user(request.user),
                action="study.file",
                target_type="study",
                target_id="-",
                reason="data scientist role required",
            )
            raise PermissionDenied("Only data scientists file federated studies.")
        payload = StudyInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        study = study_file(actor=acting_user(request.user), data=study_input(payload.validated_data))
        return Response(study_json(study), status=201)


class StudyDetailApi(APIView):
    @extend_schema(responses=None)
    def get(self, request: Request, study_id: str) -> Response:
        return Response(study_json(study_get_for(actor=acting_user(request.user), study_id=study_id)))


class StudySubmitApi(APIView):
    @extend_schema(request=None, responses=None)
    def post(self, request: Request, study_id: str) -> Response:
        return Response(study_json(study_submit(actor=acting_user(request.user), study_id=study_id)))


class StudyDecisionApi(APIView):
    @extend_schema(request=StudyDecisionInputSerializer, responses=None)
    def post(self, request: Request, study_id: str) -> Response:
        # The service refuses who may not decide before it reads the input.
        data = request.data if isinstance(request.data, dict) else {}
        study = study_decide(
            actor=acting_user(request.user),
            study_id=study_id,
            decision=str(data.get("decision", "")),
            comment=str(data.get("comment", "")),
        )
        return Response(study_json(study), status=201)


class StudyCancelApi(APIView):
    @extend_schema(request=None, responses=None)
    def post(self, request: Request, study_id: str) -> Response:
        return Response(study_json(study_cancel(actor=acting_user(request.user), study_id=study_id)))


class StudyEvidenceApi(APIView):
    """A zip for a review board: the study, its site decisions, the round log, the model card and
    the study's audit events. Oversight only (core.roles.EXPORTS_EVIDENCE)."""

    @extend_schema(responses=None)
    def get(self, request: Request, study_id: str) -> HttpResponse:
        study = study_get_for(actor=acting_user(request.user), study_id=study_id)
        if not has_role(acting_user(request.user), *EXPORTS_EVIDENCE):
            from core.errors import NotFound

            raise NotFound("No such study.")
        # The study's events and, once published, its catalog release's (publication, downloads,
        # access decisions, withdrawal): the release is what the study produced.
        targets = Q(target_type="study", target_id=str(study.pk))
        if study.release_id is not None:
            targets |= Q(target_type="release", target_id=str(study.release_id))
        events = AuditEvent.objects.filter(targets).order_by("seq")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("study.json", json.dumps(study_json(study), indent=2, default=str))
            archive.writestr("model_card.json", json.dumps(study.model_card or model_card(study), indent=2))
            archive.writestr("round_log.json", json.dumps(study_json(study)["rounds_log"], indent=2))
            archive.writestr(
                "decisions.json",
                json.dumps(
                    [
                        {
                            "reviewer": d.reviewer_name,
                            "capacity": d.capacity,
                            "site": d.site_id,
                            "decision": d.decision,
                            "comment": d.comment,
                            "at": d.at.isoformat(),
                        }
                        for d in study.decisions.all()
                    ],
                    indent=2,
                ),
            )
            archive.writestr(
                "audit_events.json",
                json.dumps(
                    [
                        {
                            "seq": e.seq,
                            "at": e.at.isoformat(),
                            "actor": e.actor_name,
                            "action": e.action,
                            "outcome": e.outcome,
                            "details": e.details,
                            "hash": e.hash,
                        }
                        for e in events
                    ],
                    indent=2,
                    default=str,
                ),
            )
        audit_record(
            actor=acting_user(request.user), action="study.evidence", target_type="study", target_id=study.pk
        )
        response = HttpResponse(buffer.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="study-{study.pk}-evidence.zip"'
        return response
