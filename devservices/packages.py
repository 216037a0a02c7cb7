"""Installing a missing program: left to `scripts/packages.sh`, which runs apt as root."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from devservices.process import ServiceError
from devservices.settings import SCRIPTS

PACKAGES_SH = SCRIPTS / "packages.sh"


def install(*packages: str, environ: Mapping[str, str] | None = None) -> None:
    """Install these Debian packages (those not installed yet); its output goes to ours."""
    done = subprocess.run([PACKAGES_SH, *packages], env=environ, check=False)
    if done.returncode != 0:
        raise ServiceError(f"scripts/packages.sh {' '.join(packages)} failed (exit {done.returncode})")
