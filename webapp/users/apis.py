"""JSON API: `POST /api/users/` signs a person up; `GET /api/schema/` describes it (OpenAPI 3.1).

Every refusal has the same shape, `{"errors": {"<field>": ["<message>", ...]}}`;
problems with the request as a whole are listed under `"__all__"`.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET

from webapp.users.forms import EMAIL_TAKEN_MESSAGE, UserCreateForm
from webapp.users.links import verify_link_builder
from webapp.users.models import User
from webapp.users.openapi import openapi_document
from webapp.users.services import EmailTaken, user_create
from webapp.users.throttling import sign_up_retry_after, too_many_sign_ups_message

JSON_CONTENT_TYPE = "application/json"


class _Refused(Exception):
    """The request cannot be served; carries the status and the errors to answer with."""

    def __init__(self, status: int, errors: dict[str, list[str]], *, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.errors = errors
        self.headers = headers or {}


# CSRF protection guards endpoints that trust the session cookie. This one
# authenticates nobody and reads no cookie: it only creates an account from the
# JSON it is sent, which a cross-site form cannot even post (it needs a JSON
# content type). Requiring a CSRF token would only shut out API clients.
@csrf_exempt
def user_create_api(request: HttpRequest) -> JsonResponse:
    """Create a user from a JSON object; answer 201 with its id and e-mail address."""
    try:
        user = _create_user(request)
    except _Refused as refused:
        return JsonResponse({"errors": refused.errors}, status=refused.status, headers=refused.headers)
    return JsonResponse({"id": user.pk, "email": user.email}, status=201)


@require_GET
def api_schema(_request: HttpRequest) -> JsonResponse:
    """The OpenAPI 3.1 description of this API."""
    return JsonResponse(openapi_document())


@sensitive_variables("payload", "form", "password")
def _create_user(request: HttpRequest) -> User:
    if request.method != "POST":
        raise _Refused(405, {NON_FIELD_ERRORS: ["Use POST."]}, headers={"Allow": "POST"})
    if (retry_after := sign_up_retry_after(request)) is not None:
        raise _Refused(
            429,
            {NON_FIELD_ERRORS: [too_many_sign_ups_message(retry_after)]},
            headers={"Retry-After": str(retry_after)},
        )
    if (request.content_type or "").lower() != JSON_CONTENT_TYPE:
        raise _Refused(415, {NON_FIELD_ERRORS: [f"Send a JSON body with Content-Type: {JSON_CONTENT_TYPE}."]})
    payload = _json_object(request.body)
    form = UserCreateForm(payload)
    if not form.is_valid():
        raise _Refused(
            400, {field: [str(message) for message in messages] for field, messages in form.errors.items()}
        )
    try:
        return user_create(**form.cleaned_data, verify_link=verify_link_builder(request))
    except EmailTaken as error:
        raise _Refused(409, {"email": [EMAIL_TAKEN_MESSAGE]}) from error
    except ValidationError as error:
        # The service's validation error is about the password (Django's validators).
        raise _Refused(400, {"password": list(error.messages)}) from error


def _json_object(body: bytes) -> dict[str, Any]:
    """The body parsed as a JSON object, or a 400 refusal saying what is wrong with it."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        # ValueError covers malformed JSON and undecodable bytes; RecursionError absurd nesting.
        raise _Refused(400, {NON_FIELD_ERRORS: ["The body is not valid JSON."]}) from error
    if not isinstance(payload, dict):
        raise _Refused(400, {NON_FIELD_ERRORS: ["The body must be a JSON object."]})
    return payload
