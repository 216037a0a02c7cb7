"""Processes started here: pid files, telling ours from a reused pid, stopping, waiting, ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service could not be started, stopped or found as asked; the message says why."""


def say(message: str) -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def command_line(pid: int) -> str | None:
    """A process's arguments joined by spaces; None once it is gone (a zombie has none)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace") or None


def live_pid(pid_file: Path, pattern: str) -> int | None:
    """The pid `pid_file` names, if that process runs and its command line contains `pattern`.

    The kernel hands a dead process's pid to the next one: without the pattern,
    a pid file left behind would name someone else's process.
    """
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    if not (text.isascii() and text.isdigit()):
        return None
    pid = int(text)
    command = command_line(pid)
    return pid if command is not None and pattern in command else None


def gone(pid: int) -> bool:
    """Whether the process has exited: it is no more, or a zombie its parent has yet to reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # "pid (command) state ...": the command may hold spaces and parentheses.
    return stat.rpartition(")")[2].split()[0] == "Z"


def wait_for(condition: Callable[[], bool], seconds: float, *, interval: float = 0.5) -> bool:
    """Check `condition` every `interval` until it holds; False if it still fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def stop(label: str, pid: int, *, grace: float = 15) -> None:
    """SIGTERM, up to `grace` seconds to exit, then SIGKILL."""
    say(f"{label}: stopping (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_for(lambda: gone(pid), grace, interval=0.1):
        say(f"{label}: still running after {grace:.0f} s: SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: gone(pid), 5, interval=0.1)


def stop_pid_file(label: str, pid_file: Path, pattern: str) -> bool:
    """Stop the process `pid_file` names if it is ours (see `live_pid`), then delete the file.

    Whether there was one to stop: a pid file naming nothing of ours is just removed.
    """
    pid = live_pid(pid_file, pattern)
    if pid is not None:
        stop(label, pid)
    pid_file.unlink(missing_ok=True)
    return pid is not None


def port_taken(port: int) -> bool:
    """Whether some process accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((HOST, port)) == 0


def probe(host: str, port: int, send: bytes, expect: bytes) -> bool:
    """Whether a server on `host`:`port` answers `send` with a reply starting with `expect`."""
    try:
        with socket.create_connection((host, port), timeout=2) as connection:
            connection.sendall(send)
            return connection.recv(16).startswith(expect)
    except OSError:
        return False


def spawn_detached(
    argv: Sequence[str | os.PathLike[str]], *, log: Path, cwd: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start a process that outlives this one (a session of its own, output appended to `log`); its pid."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            [os.fspath(arg) for arg in argv],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    pid = process.pid
    with warnings.catch_warnings():
        # It runs on after this process has exited, on purpose: nobody here waits for it.
        warnings.simplefilter("ignore", ResourceWarning)
        del process
    return pid


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log, under a header naming it; empty if there is none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    if not text:
        return ""
    return f"---- tail of {path} ----\n" + "\n".join(text.splitlines()[-lines:]) + "\n"
