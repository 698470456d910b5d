"""One error shape for the whole API: {"error": {"code", "message", "fields"}}.

Bad input is always a 4xx in that shape: DRF's exceptions, the services' DomainErrors, and the
Django exceptions a view can let escape on hostile input (a model ValidationError, a lookup that
finds nothing, an oversized or suspicious request). Anything else is a fault of ours: DRF lets it
propagate, Django logs it, and `server_error` below answers the same JSON shape (never an HTML
page) under /api/. Refusals (403/404/409) are noted for the audit log (audit.middleware).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from core.errors import DomainError, note_refusal

logger = logging.getLogger(__name__)
API_PREFIX = "/api/"
SIGN_IN = "Sign in first: send `Authorization: Token <token>` (POST /api/v1/auth/token/)."


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def error_response(
    code: str, message: str, http_status: int, fields: dict[str, Any] | None = None
) -> Response:
    return Response(error_body(code, message, fields), status=http_status)


def _flatten(detail: Any) -> dict[str, str]:
    if isinstance(detail, dict):
        return {str(k): _join(v) for k, v in detail.items()}
    return {}


def _join(value: Any) -> str:
    """Messages of one field, nested serializers' included, as one line."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_join(v)}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(_join(v) for v in value)
    return str(value)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = _response_for(exc, context)
    if response is not None:
        set_rollback()
        error = response.data.get("error", {}) if isinstance(response.data, dict) else {}
        note_refusal(context.get("request"), status=response.status_code, code=error.get("code", ""))
    return response


def _response_for(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return error_response(exc.code, exc.message, exc.status, exc.fields)
    if isinstance(exc, ObjectDoesNotExist):
        # A lookup a view did not guard: the answer is the same 404, but the gap is worth fixing.
        logger.warning("Unguarded %s in %s", type(exc).__name__, type(context.get("view")).__name__)
    if isinstance(exc, Http404 | ObjectDoesNotExist):
        return error_response("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
    if isinstance(exc, DjangoValidationError):
        # A model or field validator ran on input the serializer let through: still the caller's input.
        return error_response("invalid", " ".join(exc.messages) or "Invalid input.", 400)
    if isinstance(exc, RequestDataTooBig):
        return error_response("too_large", "The request body is too large; send less data.", 413)
    if isinstance(exc, SuspiciousOperation):
        return error_response("bad_request", "The request was refused as malformed.", 400)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not ours to hide: Django logs it and server_error answers in JSON
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        message = "; ".join(f"{k}: {v}" for k, v in fields.items()) or _join(exc.detail) or "Invalid input."
        return _with_headers(error_response("invalid", message, 400, fields), response)
    code = getattr(exc, "default_code", "error")
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        message = SIGN_IN
    else:
        message = str(getattr(exc, "detail", "Request failed."))
    return _with_headers(error_response(str(code), message, response.status_code), response)


def _with_headers(ours: Response, drf: Response) -> Response:
    # WWW-Authenticate (401), Retry-After (429) and Allow (405) are part of the answer.
    for header in ("WWW-Authenticate", "Retry-After", "Allow"):
        if header in drf:
            ours[header] = drf[header]
    return ours


# --- Django's error views, in the API's shape under /api/ (portal.urls handler400..500) -------


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def _json(code: str, message: str, http_status: int) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=http_status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _json("bad_request", "The request was refused as malformed.", 400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _json("permission_denied", "You do not have permission to perform this action.", 403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _json("not_found", "No such endpoint; see /api/v1/docs/ for the API's paths.", 404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        # Django has logged the traceback (django.request); the caller gets the request id to quote.
        return _json(
            "server_error",
            "Something went wrong on our side; it has been logged. Quote the X-Request-ID header "
            "of this response if you report it.",
            500,
        )
    return defaults.server_error(request)


# --- The error responses, documented in the OpenAPI schema --------------------------------------
# A drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]): every
# operation lists the errors it can answer, all in the one `Error` shape, so clients (and
# schemathesis) know a 4xx body before they see one. Responses a view documents itself are kept.

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every API error: a machine code, a message saying what to do, optional per-field messages.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "Machine-readable, e.g. `invalid`, `not_found`."},
                "message": {"type": "string", "description": "What went wrong and what to do."},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Per-field messages, when the input had field errors.",
                },
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}
ERROR_DESCRIPTIONS = {
    "400": "Invalid input, or a body that is not one JSON object (or is nested too deeply).",
    "401": "Not signed in: send `Authorization: Token <token>`.",
    "403": "Signed in, but not allowed to do this to an object you can see.",
    "404": "No such object, or one you may not see (the two are indistinguishable).",
    "405": "This path does not take that method.",
    "409": "Not allowed from the object's current state.",
    "413": "The body or file is larger than the limit.",
    "415": "Unsupported content type: send JSON (or multipart where a file is uploaded).",
    "429": "Too many requests; retry after the `Retry-After` header's seconds.",
}
_WRITES = {"post", "put", "patch", "delete"}


def document_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method.lower() not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for code in _error_statuses(path, method.lower(), operation):
                responses.setdefault(code, _error_response(code))
    return result


def _error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    signed_in = any(requirement for requirement in operation.get("security", [{}]))
    statuses = ["400", "405"]
    if signed_in:
        statuses += ["401", "403"]
    paged = any(p.get("in") == "query" and p.get("name") == "page" for p in operation.get("parameters", []))
    # An object path names something that may not exist; a paginated list answers 404 past its end.
    if "{" in path or paged:
        statuses.append("404")
    if method in _WRITES:
        statuses += ["409", "413", "415"]
    statuses.append("429")
    return statuses


def _error_response(code: str) -> dict[str, Any]:
    return {
        "description": ERROR_DESCRIPTIONS[code],
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}},
    }
