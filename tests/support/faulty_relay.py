"""`python -m tests.support.faulty_relay`: the relay, with a fault armed between ack and commit.

It runs exactly what `python -m relay` runs, plus one more observer that acts
on `DIE_HARD_FAULT` when ClickHouse has acknowledged a batch and PostgreSQL has
not yet committed its removal, the moment the delivery guarantees hinge on:

- `kill_after_ack`: the process kills itself with SIGKILL (no cleanup, no rollback
  sent: PostgreSQL notices the dropped connection and rolls the batch back);
- `pause_after_ack:<seconds>`: the batch is held open that long (a slow commit,
  or a shutdown arriving mid-batch).

Tests only: production code and settings carry no fault points.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass

import structlog

from relay.__main__ import main
from relay.core.observer import Batch, Observer

FAULT_VARIABLE = "DIE_HARD_FAULT"

log = structlog.get_logger("relay.fault")


@dataclass(frozen=True, slots=True)
class FaultAfterAck(Observer):
    """Kills the process, or pauses, after each ClickHouse acknowledgement."""

    kill: bool = False
    pause: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> FaultAfterAck:
        """`kill_after_ack` or `pause_after_ack:<seconds>`."""
        name, _, argument = spec.partition(":")
        if name == "kill_after_ack" and not argument:
            return cls(kill=True)
        if name == "pause_after_ack" and argument:
            return cls(pause=float(argument))
        raise ValueError(
            f"{FAULT_VARIABLE} must be kill_after_ack or pause_after_ack:<seconds>, not {spec!r}"
        )

    async def acknowledged(self, batch: Batch) -> None:
        if self.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        log.warning("fault_pause_after_ack", seconds=self.pause, events=batch.events)
        await asyncio.sleep(self.pause)


if __name__ == "__main__":
    sys.exit(main(observers=[FaultAfterAck.parse(os.environ[FAULT_VARIABLE])]))
