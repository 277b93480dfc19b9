"""What a process costs, from the kernel: CPU seconds, peak RSS, and the machine's load.

- CPU: utime + stime of /proc/<pid>/stat (all its threads), in clock ticks.
- Peak RSS: VmHWM of /proc/<pid>/status. Writing "5" to /proc/<pid>/clear_refs resets it to
  the current RSS (Linux >= 4.0), so a phase can report its own peak.
- Load: /proc/loadavg, sampled in the background, so a run says how busy the machine was.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command name: state is fields[0], utime is field 14 of the line = index 11.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss(pid: int) -> bool:
    """Start a new peak-RSS window for the process (False if the kernel refused)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class CostWindow:
    """CPU and peak RSS of one process over a window (opened by `start`)."""

    pid: int
    cpu_at_start: float = 0.0

    def start(self) -> CostWindow:
        reset_peak_rss(self.pid)
        self.cpu_at_start = cpu_seconds(self.pid)
        return self

    def sample(self, events: int) -> dict[str, float]:
        """CPU ms per event and peak RSS since `start`, for `events` handled in the window."""
        cpu = cpu_seconds(self.pid) - self.cpu_at_start
        return {
            "events": events,
            "cpu_s": cpu,
            "cpu_ms_per_event": cpu * 1000 / events if events else float("nan"),
            "peak_rss_mb": peak_rss_mb(self.pid),
        }


@dataclass
class LoadSampler:
    """The 1-minute load average every `every_s` seconds, on a daemon thread."""

    every_s: float = 5.0
    samples: list[tuple[float, float]] = field(default_factory=list)  # (time, load1)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> LoadSampler:
        def run() -> None:
            while True:
                load1 = float(Path("/proc/loadavg").read_text().split()[0])
                self.samples.append((time.time(), load1))
                if self._stop.wait(self.every_s):
                    return

        self._thread = threading.Thread(target=run, name="load-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.every_s + 1)

    def between(self, start: float, end: float) -> list[float]:
        return [load for at, load in self.samples if start <= at <= end]

    def summary(self, start: float = 0.0, end: float = float("inf")) -> dict[str, float]:
        loads = self.between(start, end) or [load for _, load in self.samples[-1:]]
        if not loads:
            return {"min": float("nan"), "median": float("nan"), "max": float("nan")}
        return {"min": min(loads), "median": statistics.median(loads), "max": max(loads)}
