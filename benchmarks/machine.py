"""What the machine was and how busy it was while a benchmark ran (Linux `/proc`)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    """Resident memory of a process (`VmRSS` now, or `VmHWM`, its peak), MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_queue(pid: int) -> tuple[float, int]:
    """Seconds a process has spent runnable but waiting for a core, and how many times it was scheduled."""
    try:
        _, waited, slices = Path(f"/proc/{pid}/schedstat").read_text().split()
    except (OSError, ValueError):
        return 0.0, 0
    return int(waited) / 1e9, int(slices)


def _cpu_pressure() -> float:
    """Seconds during which some task waited for a core (PSI), since boot; 0 where the kernel lacks it."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return 0.0
    return int(some.rsplit("total=", 1)[1]) / 1e6


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@dataclass(slots=True)
class Machine:
    """The machine, and how loaded it was (by everything on it) between `sample` and `finish`."""

    started: datetime
    cpu_model: str
    cores: int
    memory_gib: float
    load_before: tuple[float, float, float]
    _cpu_before: tuple[int, int]
    _pressure_before: float
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    busy: float = 0.0
    pressure: float = 0.0
    seconds: float = 0.0

    @classmethod
    def sample(cls) -> Machine:
        """Start watching."""
        memory_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
        return cls(
            started=datetime.now(UTC),
            cpu_model=_cpu_model(),
            cores=os.cpu_count() or 1,
            memory_gib=memory_kb / 1024 / 1024,
            load_before=os.getloadavg(),
            _cpu_before=_cpu_times(),
            _pressure_before=_cpu_pressure(),
        )

    def finish(self) -> None:
        """Stop watching: how busy were the cores meanwhile."""
        busy, total = _cpu_times()
        busy_before, total_before = self._cpu_before
        self.busy = (busy - busy_before) / max(total - total_before, 1)
        self.load_after = os.getloadavg()
        self.seconds = (datetime.now(UTC) - self.started).total_seconds()
        self.pressure = (_cpu_pressure() - self._pressure_before) / max(self.seconds, 1e-9)

    def describe(self) -> dict[str, object]:
        """For the JSON line."""
        return {
            "date": self.started.strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": self.cpu_model,
            "cores": self.cores,
            "memory_gib": round(self.memory_gib, 1),
            "kernel": platform.release(),
            "busy_share": round(self.busy, 3),
            # Share of the time some runnable task was waiting for a core.
            "cpu_pressure": round(self.pressure, 3),
            "load_before": [round(value, 2) for value in self.load_before],
            "load_after": [round(value, 2) for value in self.load_after],
            "seconds": round(self.seconds),
        }
