"""The OpenAPI 3.1 description of the JSON API, served at `/api/schema/`.

Written by hand because the API is one plain Django view (a generator would
mean a framework for one endpoint), but not copied by hand: the request body
is read off `UserCreateForm` and the password validators, the messages off the
constants the view answers with. `tests/integration/web/test_openapi.py`
fuzzes the live API against it with Schemathesis.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import version
from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.core.exceptions import NON_FIELD_ERRORS

from webapp.users.forms import EMAIL_TAKEN_MESSAGE, UserCreateForm
from webapp.users.models import NAME_REFUSED_CHARACTERS, validate_name

JSON = "application/json"
NO_NUL = "^[^\\u0000]*$"
ONE_LINE = f"^[^{NAME_REFUSED_CHARACTERS}]*$"


@cache
def openapi_document() -> dict[str, Any]:
    """The whole description, as the JSON object `/api/schema/` returns."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Die Hard API",
            "version": version("die-hard"),
            "description": (
                "Sign people up over JSON. Every refusal has one shape: "
                '`{"errors": {"<field>": ["<message>", ...]}}`, with problems of the request as a '
                f"whole under `{NON_FIELD_ERRORS}`. The endpoint needs no CSRF token and no "
                "authentication. Methods other than POST are answered with 405 and an `Allow` header "
                "(see `components.responses.MethodNotAllowed`)."
            ),
        },
        "paths": {
            "/api/users/": {
                "post": {
                    "operationId": "user_create",
                    "summary": "Sign a person up",
                    "description": (
                        "Creates the account and records a `user_created` event in the same transaction; "
                        "a welcome e-mail with a one-time link that verifies the address follows (it "
                        "quotes nothing sent here). Fields the API does not know are ignored."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/UserCreate"}}},
                    },
                    "responses": {
                        "201": {
                            "description": "The account was created.",
                            "content": {JSON: {"schema": {"$ref": "#/components/schemas/UserCreated"}}},
                        },
                        "400": {
                            "description": (
                                "The body is not a JSON object, or a field is missing or invalid (this "
                                "includes passwords the site's password rules refuse: too common, all "
                                "digits, or too close to the name or address; names with line breaks, "
                                "tabs or other control characters; and addresses whose part before the @ "
                                "is quoted around anything but a plain address)."
                            ),
                            "content": {JSON: {"schema": {"$ref": "#/components/schemas/InvalidInput"}}},
                        },
                        "409": {
                            "description": (
                                "An account with this e-mail address exists (compared case-insensitively, "
                                'and `"ada"@example.com` is `ada@example.com`).'
                            ),
                            "content": {JSON: {"schema": {"$ref": "#/components/schemas/EmailTaken"}}},
                        },
                        "415": {
                            "description": f"The body was not sent as `Content-Type: {JSON}`.",
                            "content": {JSON: {"schema": {"$ref": "#/components/schemas/RequestErrors"}}},
                        },
                        "429": {"$ref": "#/components/responses/TooManyRequests"},
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "UserCreate": _request_schema(UserCreateForm()),
                "UserCreated": {
                    "type": "object",
                    "required": ["id", "email"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "integer", "description": "The new account's id."},
                        "email": {"type": "string", "description": "The address, as stored."},
                    },
                },
                "InvalidInput": _errors_schema(
                    [*UserCreateForm.base_fields, NON_FIELD_ERRORS], "What is wrong, by field."
                ),
                "EmailTaken": _errors_schema(["email"], "", message=EMAIL_TAKEN_MESSAGE),
                "RequestErrors": _errors_schema([NON_FIELD_ERRORS], "What is wrong with the request."),
            },
            "responses": {
                "MethodNotAllowed": {
                    "description": "Only POST is served.",
                    "headers": {"Allow": {"required": True, "schema": {"type": "string", "const": "POST"}}},
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/RequestErrors"}}},
                },
                "TooManyRequests": {
                    "description": "Too many sign-ups from this client: wait `Retry-After` seconds.",
                    "headers": {
                        "Retry-After": {
                            "required": True,
                            "description": "Seconds to wait before trying again.",
                            "schema": {"type": "string", "pattern": "^[0-9]+$"},
                        }
                    },
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/RequestErrors"}}},
                },
            },
        },
    }


def _request_schema(form: forms.Form) -> dict[str, Any]:
    """The JSON object a form accepts: every field a string, with the form's own limits."""
    properties = {}
    for name, field in form.fields.items():
        # Django's text fields refuse the NUL character (PostgreSQL cannot store it).
        schema: dict[str, Any] = {"type": "string", "pattern": NO_NUL, "description": str(field.label)}
        if validate_name in field.validators:
            schema["pattern"] = ONE_LINE
            schema["description"] = (
                f"{field.label}, on one line: no line breaks, tabs or other control characters."
            )
        if field.required:
            schema["minLength"] = 1
        max_length = getattr(field, "max_length", None)
        if max_length:
            schema["maxLength"] = max_length
        if isinstance(field, forms.EmailField):
            schema["format"] = "email"
        if isinstance(field.widget, forms.PasswordInput):
            schema["minLength"] = _password_min_length()
            schema["writeOnly"] = True
            schema["description"] = "Taken exactly as typed. " + " ".join(
                password_validation.password_validators_help_texts()
            )
        properties[name] = schema
    return {
        "type": "object",
        "required": [name for name, field in form.fields.items() if field.required],
        "properties": properties,
    }


def _password_min_length() -> int:
    lengths = [
        validator.min_length
        for validator in password_validation.get_default_password_validators()
        if isinstance(validator, password_validation.MinimumLengthValidator)
    ]
    return max(lengths, default=1)


def _errors_schema(fields: list[str], description: str, *, message: str | None = None) -> dict[str, Any]:
    """`{"errors": {<one of fields>: [<message>, ...]}}`."""
    messages: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"type": "string"}}
    if message is not None:
        messages["items"] = {"type": "string", "const": message}
    errors: dict[str, Any] = {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"enum": fields},
        "additionalProperties": messages,
    }
    if description:
        errors["description"] = description
    return {
        "type": "object",
        "required": ["errors"],
        "additionalProperties": False,
        "properties": {"errors": errors},
    }
