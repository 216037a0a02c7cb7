"""The relays under test: real `python -m relay` processes, started, killed and restarted.

A fault (`kill_after_ack`, `pause_after_ack:<seconds>`) runs the same relay
through the test-only entry point `python -m tests.support.faulty_relay`;
production code carries no fault points.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.faulty_relay import FAULT_VARIABLE
from tests.support.processes import Children, rss_bytes
from tests.support.waiting import free_port

ROOT = Path(__file__).resolve().parents[2]


def relay_command(fault: str | None) -> tuple[list[str], dict[str, str]]:
    """The command line and extra environment of a relay, with `fault` armed if given."""
    if not fault:
        return [sys.executable, "-m", "relay"], {}
    return [sys.executable, "-m", "tests.support.faulty_relay"], {FAULT_VARIABLE: fault}


@dataclass
class Relay:
    """One relay process."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    fault: str | None
    log: Path

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def status(self) -> dict[str, object] | None:
        """The relay's `/status` document, or None if it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status", timeout=2) as response:
                document: dict[str, object] = json.loads(response.read())
                return document
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def metric(self, name: str) -> float | None:
        """The value of an unlabelled metric on the relay's `/metrics`, or None if it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except (OSError, urllib.error.URLError):
            return None
        for line in text.splitlines():
            metric, _, value = line.partition(" ")
            if metric == name:
                return float(value)
        return None


@dataclass
class RelayFleet:
    """The relays of one scenario; the keeper restarts the ones that died, like an orchestrator."""

    children: Children
    env: dict[str, str]
    logs: Path
    relays: list[Relay] = field(default_factory=list)
    started: int = 0
    restarts: int = 0

    def start(self, *, fault: str | None = None) -> Relay:
        """Start one relay (without waiting for it)."""
        self.started += 1
        name = f"relay-{self.started}"
        argv, extra = relay_command(fault)
        port = free_port()
        log = self.logs / f"{name}.log"
        process = self.children.spawn(
            argv, log=log, cwd=ROOT, env={**self.env, **extra, "RELAY_HTTP_PORT": str(port)}
        )
        relay = Relay(name=name, process=process, port=port, fault=fault, log=log)
        self.relays.append(relay)
        return relay

    @property
    def running(self) -> list[Relay]:
        return [relay for relay in self.relays if relay.running]

    def kill(self, relay: Relay, signum: int = signal.SIGKILL) -> None:
        """Send `signum` to one relay."""
        if relay.running:
            relay.process.send_signal(signum)

    def replace_dead(self, *, fault: str | bool | None = True) -> int:
        """Start a replacement for every relay that exited; return how many.

        The replacement keeps the dead relay's fault unless `fault` names another
        (`None`: a clean relay).
        """
        replaced = 0
        for relay in list(self.relays):
            if relay.running:
                continue
            self.relays.remove(relay)
            relay.process.wait()
            self.start(fault=relay.fault if fault is True else fault or None)
            self.restarts += 1
            replaced += 1
        return replaced

    async def keep(self, stop: asyncio.Event, *, interval: float = 0.2) -> None:
        """Restart dead relays until `stop` is set."""
        while not stop.is_set():
            self.replace_dead()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    def disarm(self, *, grace: float = 20) -> None:
        """Replace every relay that carries a fault with a clean one.

        Each is stopped with SIGTERM, as an operator would, so it finishes the
        batch in hand (a relay still armed may kill itself on the way out).
        """
        armed = [relay for relay in self.relays if relay.fault]
        for relay in armed:
            self.kill(relay, signal.SIGTERM)
        for relay in armed:
            try:
                relay.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                relay.process.kill()
                relay.process.wait()
            relay.fault = None
        self.replace_dead(fault=None)

    async def ready(self, *, within: float = 60) -> None:
        """Wait until every running relay answers `/status`."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            self.replace_dead()
            answers = await asyncio.gather(*(asyncio.to_thread(relay.status) for relay in self.relays))
            if self.relays and all(answer is not None for answer in answers):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"relays did not come up within {within} s; see {self.logs}")
            await asyncio.sleep(0.2)

    def stop_all(self, *, grace: float = 20) -> list[int]:
        """SIGTERM every relay, wait for each (SIGKILL after `grace`); return the exit codes."""
        for relay in self.relays:
            if relay.running:
                relay.process.send_signal(signal.SIGTERM)
        codes = []
        for relay in self.relays:
            try:
                codes.append(relay.process.wait(timeout=grace))
            except subprocess.TimeoutExpired:
                relay.process.kill()
                codes.append(relay.process.wait())
        self.relays.clear()
        return codes

    def rss(self) -> dict[str, int]:
        """Resident memory of each running relay, by name."""
        sizes = {relay.name: rss_bytes(relay.process.pid) for relay in self.running}
        return {name: size for name, size in sizes.items() if size is not None}
