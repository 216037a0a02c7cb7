"""`/api/schema/` describes the JSON API as it behaves: valid OpenAPI 3.1, fuzzed against the live API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.test import Client
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer

from tests.integration.web.factories import SignUpFactory, UserFactory

if TYPE_CHECKING:
    # The test client's response (with `.json()`); django-stubs names it only privately.
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

SCHEMA_URL = "/api/schema/"
API_URL = "/api/users/"
SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture
def document(client: Client) -> dict[str, Any]:
    """The description as `/api/schema/` serves it."""
    response = client.get(SCHEMA_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def response_for(document: dict[str, Any], status: int, method: str = "post") -> dict[str, Any]:
    """The documented response of `/api/users/` for a status, `$ref` followed."""
    responses: dict[str, Any] = document["components"]["responses"]
    if status == 405:
        return dict(responses["MethodNotAllowed"])
    response: dict[str, Any] = document["paths"][API_URL][method]["responses"][str(status)]
    if "$ref" in response:
        response = responses[response["$ref"].rsplit("/", 1)[1]]
    return response


def assert_matches(document: dict[str, Any], status: int, response: TestResponse) -> None:
    """The response has the documented status, content type, headers and body shape."""
    described = response_for(document, status)
    assert response.status_code == status
    (content_type, media) = next(iter(described["content"].items()))
    assert response["Content-Type"] == content_type
    Draft202012Validator({**media["schema"], "components": document["components"]}).validate(response.json())
    for header, spec in described.get("headers", {}).items():
        assert response.has_header(header) or not spec.get("required")
        Draft202012Validator(spec["schema"]).validate(response[header])


def post_json(client: Client, body: object) -> TestResponse:
    """POST a value to the API as a JSON body."""
    return client.post(API_URL, json.dumps(body), content_type="application/json")


def test_the_description_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)

    assert document["openapi"].startswith("3.1.")


def test_the_description_names_every_status_the_api_can_answer(document: dict[str, Any]) -> None:
    documented = set(document["paths"][API_URL]["post"]["responses"])

    assert documented == {"201", "400", "409", "415", "429"}
    assert response_for(document, 405)["headers"]["Allow"]["required"]


def test_the_description_is_served_only_on_get(client: Client) -> None:
    assert client.post(SCHEMA_URL).status_code == 405


@pytest.mark.django_db
def test_a_sign_up_answers_as_described_for_201(client: Client, document: dict[str, Any]) -> None:
    assert_matches(document, 201, post_json(client, SignUpFactory.build()))


@pytest.mark.django_db
def test_invalid_input_answers_as_described_for_400(client: Client, document: dict[str, Any]) -> None:
    assert_matches(document, 400, post_json(client, {**SignUpFactory.build(), "email": "nope"}))
    assert_matches(document, 400, post_json(client, {**SignUpFactory.build(), "password": "password"}))
    assert_matches(document, 400, post_json(client, ["not", "an", "object"]))


@pytest.mark.django_db
def test_a_taken_address_answers_as_described_for_409(client: Client, document: dict[str, Any]) -> None:
    UserFactory.create(email="taken@example.com")

    assert_matches(document, 409, post_json(client, SignUpFactory.build(email="taken@example.com")))


@pytest.mark.django_db
def test_a_form_body_answers_as_described_for_415(client: Client, document: dict[str, Any]) -> None:
    assert_matches(document, 415, client.post(API_URL, SignUpFactory.build()))


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_answer_as_described_for_405(
    client: Client, document: dict[str, Any], method: str
) -> None:
    assert_matches(document, 405, getattr(client, method)(API_URL))


@pytest.mark.django_db
def test_a_throttled_sign_up_answers_as_described_for_429(
    client: Client, document: dict[str, Any], settings: Settings
) -> None:
    settings.THROTTLE_SIGN_UP_RATE = "1/h"
    post_json(client, SignUpFactory.build())

    response = post_json(client, SignUpFactory.build())

    assert_matches(document, 429, response)
    assert int(response["Retry-After"]) > 0


def test_the_request_body_takes_its_limits_from_the_sign_up_form(document: dict[str, Any]) -> None:
    body = document["components"]["schemas"]["UserCreate"]

    assert body["required"] == ["email", "password", "first_name", "last_name"]
    assert body["properties"]["email"]["maxLength"] == 254
    assert body["properties"]["first_name"]["maxLength"] == 150
    assert body["properties"]["password"]["minLength"] == 8


def test_schemathesis_finds_no_server_error_and_no_answer_the_description_does_not_allow(
    live_server: LiveServer, tmp_path: Path, settings: Settings
) -> None:
    # Fuzz the whole API, not the throttle: at the usual rate nearly every request would get 429.
    settings.THROTTLE_SIGN_UP_RATE = "100000/h"
    # Every check: no 5xx, documented statuses, content types, headers and bodies; invalid
    # input refused, valid input not refused otherwise than described; undocumented methods 405.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(SCHEMATHESIS_CONFIG),
            "--no-color",
            "run",
            f"{live_server.url}{SCHEMA_URL}",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            "--seed",
            "14",
            "--report-dir",
            str(tmp_path),
        ],
        # Schemathesis keeps a cache of crashes in the working directory.
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "POST /api/users/" in result.stdout
