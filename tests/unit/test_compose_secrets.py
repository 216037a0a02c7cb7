"""`make secrets` gives compose every secret it requires, once, and never changes one."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ruamel.yaml import YAML

from tests.support.project import ROOT

SECRETS_SH = ROOT / "scripts" / "secrets.sh"
COMPOSE_FILE = ROOT / "compose.yaml"


def required_by_compose() -> set[str]:
    """Every `${NAME:?...}` in compose.yaml, and every variable it hands a service as a secret."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", text))
    secrets = YAML(typ="safe").load(text).get("secrets", {})
    return required | {secret["environment"] for secret in secrets.values() if "environment" in secret}


def secrets_required_by_compose() -> set[str]:
    """What of that is a secret, by its name: the rest (EMAIL_HOST) is the operator's to choose."""
    return {name for name in required_by_compose() if re.search(r"(_PASSWORD|_SECRET|_KEY)$", name)}


def write_secrets(env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SECRETS_SH), str(env_file)], capture_output=True, text=True, check=True, timeout=30
    )


def assignments(env_file: Path) -> dict[str, str]:
    lines = env_file.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_compose_requires_secrets_at_all() -> None:
    # Guards the derivation below: a regex that matched nothing would pass every test.
    assert {"SECRET_KEY", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= secrets_required_by_compose()


def test_every_required_variable_is_written_or_named_as_the_operators_to_set(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"

    result = write_secrets(env_file)

    for name in required_by_compose() - secrets_required_by_compose():
        assert f"compose also requires {name}, which is no secret to invent" in result.stdout
        assert name not in assignments(env_file)
    assert set(assignments(env_file)) == secrets_required_by_compose()


def test_every_secret_compose_requires_is_written_with_a_random_url_safe_value(tmp_path: Path) -> None:
    first, second = tmp_path / "first.env", tmp_path / "second.env"

    write_secrets(first)
    write_secrets(second)

    values = assignments(first)
    assert set(values) == secrets_required_by_compose()
    for name, value in values.items():
        assert re.fullmatch(r"[0-9a-f]{64}", value), name
        assert value != assignments(second)[name], name
    assert first.stat().st_mode & 0o077 == 0, "a new file holding secrets is readable by its owner only"


def test_a_second_run_changes_nothing(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    write_secrets(env_file)
    before = env_file.read_bytes()

    result = write_secrets(env_file)

    assert env_file.read_bytes() == before
    assert f"0 written to {env_file}" in result.stdout


def test_values_already_set_are_kept_and_empty_ones_filled_in_place(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "DEBUG=true\nREDIS_PASSWORD=chosen-by-hand\nSECRET_KEY=\n# no newline at the end", encoding="utf-8"
    )

    write_secrets(env_file)

    lines = env_file.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == ["DEBUG=true", "REDIS_PASSWORD=chosen-by-hand"]
    assert re.fullmatch(r"SECRET_KEY=[0-9a-f]{64}", lines[2])
    assert lines[3] == "# no newline at the end"
    assert sum(line.startswith("SECRET_KEY=") for line in lines) == 1
    assert set(assignments(env_file)) == secrets_required_by_compose() | {"DEBUG"}
