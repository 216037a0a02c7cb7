"""Child processes that die with whoever started them (the chaos suite, a test), however it ends.

Every child gets `PR_SET_PDEATHSIG(SIGKILL)`: if the suite itself is killed
(even with SIGKILL), the kernel kills its servers and relays too. A normal or
interrupted end stops them politely first (`Children.stop_all`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent(run_as: str | None) -> Callable[[], None]:
    """The child-side set-up: drop privileges if asked, then ask to die with the parent.

    The order matters: changing the user id clears the parent-death signal.
    """
    account = pwd.getpwnam(run_as) if run_as else None

    def prepare() -> None:
        if account is not None:
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
        if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")

    return prepare


@dataclass
class Children:
    """Every process the suite started, so all of them can be stopped at the end."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        run_as: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a process whose output goes to `log`; it dies if the suite dies.

        Must be called from the main thread: the parent-death signal follows the
        thread that forked, not the process.
        """
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("spawn children from the main thread only")
        with log.open("ab") as output:
            process = subprocess.Popen(
                [str(arg) for arg in argv],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                env=env,
                cwd=cwd,
                preexec_fn=_die_with_parent(run_as),  # noqa: PLW1509 (the main thread, checked above)
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def stop_all(self, *, grace: float = 5.0) -> None:
        """SIGTERM every child still running, SIGKILL what outlives `grace`, reap all."""
        alive = [process for process in self.processes if process.poll() is None]
        for process in alive:
            _signal(process, signal.SIGTERM)
        for process in alive:
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal(process, signal.SIGKILL)
                process.wait()
        self.processes.clear()


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
