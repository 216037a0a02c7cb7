"""Plain HTTP from tests to the processes they start: statuses are answers, errors too."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def http_get(url: str, *, timeout: float = 5) -> tuple[int, bytes]:
    """Status and body of a GET; error statuses are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_post_json(url: str, payload: dict[str, str], *, timeout: float = 10) -> tuple[int, bytes]:
    """Status and body of a JSON POST; error statuses are answers too."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def answers(url: str, *, timeout: float = 2) -> bool:
    """Whether `url` answers 200 (a process coming up, or going away, does not)."""
    try:
        return http_get(url, timeout=timeout)[0] == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
