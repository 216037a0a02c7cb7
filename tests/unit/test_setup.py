"""The set-up finds a Python 3.13, or says in one sentence what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.project import ROOT

PYTHON_SH = ROOT / "scripts" / "python.sh"
UV = ROOT / ".tools" / "bin" / "uv"

pytestmark = pytest.mark.skipif(not UV.exists(), reason="uv is bootstrapped by `make install`")


def a_path_with(tmp_path: Path, **programs: str) -> str:
    """A PATH holding only bash, dirname and the named programs (name=target): no Python unless named."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name, target in {
        "bash": shutil.which("bash"),
        "dirname": shutil.which("dirname"),
        **programs,
    }.items():
        assert target
        (directory / name).symlink_to(target)
    return str(directory)


def find_python(tmp_path: Path, path: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """`scripts/python.sh find` where uv has installed no Python and can download none."""
    env = {
        "PATH": path,
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv-pythons"),
        # Where uv's builds would come from: nowhere, as on a machine that cannot reach them.
        "UV_PYTHON_INSTALL_MIRROR": (tmp_path / "no-mirror").as_uri(),
        **extra,
    }
    return subprocess.run(
        [str(PYTHON_SH), "find"], env=env, capture_output=True, text=True, check=False, timeout=60
    )


def test_without_python_3_13_the_set_up_stops_with_one_sentence_saying_what_to_install(
    tmp_path: Path,
) -> None:
    result = find_python(tmp_path, a_path_with(tmp_path))

    assert result.returncode == 1
    assert result.stdout == ""
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("python: error: no Python 3.13 here and uv could not download one")
    assert "apt-get install python3.13" in error
    assert "set PYTHON" in error


def test_a_python_3_13_on_the_path_is_the_one_used(tmp_path: Path) -> None:
    base = Path(sys.base_prefix) / "bin" / "python3.13"

    result = find_python(tmp_path, a_path_with(tmp_path, **{"python3.13": str(base)}))

    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve() == base.resolve()


def test_a_python_named_in_python_that_is_not_3_13_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "python3.9"
    other.write_text("#!/bin/sh\necho 3.9\n", encoding="utf-8")
    other.chmod(0o755)

    result = find_python(tmp_path, a_path_with(tmp_path), PYTHON=str(other))

    assert result.returncode == 1
    assert f"PYTHON={other} is not a Python 3.13" in result.stderr
