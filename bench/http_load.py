"""HTTP load from C and Go generators (Debian's `wrk` and `hey`), with their own CPU reported.

Why not the Python generator (loadgen.py) for saturation: on a 2-core machine it needs about as
much CPU per request as a trivial endpoint of the server it loads, so it would measure itself.
wrk (C, event loop) is the closed-loop saturation load: N connections sending back to back for
a duration. hey (Go) is the fixed-count load (`-n`): exactly N requests, for the cost windows.
Each result carries the generator's own CPU seconds (from the kernel's rusage of the child), so
a report can show it was not the bottleneck. The open-loop fixed-rate load with per-request
latencies and the event ids of the 202s stays in loadgen.py: neither tool reports those.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_WRK_POST_EVENTS = """
-- POST /api/v1/events with a rotating bearer key (the keys are wrk's script arguments).
local keys, i = {}, 0
init = function(args) for _, k in ipairs(args) do keys[#keys + 1] = k end end
request = function()
  i = i + 1
  return wrk.format("POST", "/api/v1/events", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. keys[(i % #keys) + 1],
  }, '{"category":"deploy","message":"release ' .. i .. ' rolled out","fields":{"v":"1"}}')
end
"""
EVENT_BODY = '{"category":"deploy","message":"release rolled out","fields":{"v":"1"}}'


class GeneratorMissing(RuntimeError):
    """wrk or hey is not installed (`apt-get install wrk hey`)."""


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise GeneratorMissing(f"{tool} not found: apt-get install wrk hey")
    return path


def available() -> bool:
    return shutil.which("wrk") is not None and shutil.which("hey") is not None


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class HttpRun:
    rate: float
    """Successful (2xx) responses per second."""
    requests: int
    failed: int
    """Non-2xx responses plus socket errors (connect, read, write, timeout)."""
    seconds: float
    p50_ms: float
    p99_ms: float
    generator_cpu_s: float

    @property
    def generator_cores(self) -> float:
        """The generator's CPU use in cores (1.0 = one core busy for the whole run)."""
        return self.generator_cpu_s / self.seconds if self.seconds else float("nan")


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _duration_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNIT_MS[unit]


def parse_wrk(output: str, cpu_s: float) -> HttpRun:
    requests, seconds = re.search(r"(\d+) requests in ([\d.]+)(s|m)", output).groups()[:2]  # type: ignore[union-attr]
    total = int(requests)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    failed = int(non_2xx.group(1)) if non_2xx else 0
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    secs = float(seconds)
    return HttpRun(
        rate=(total - failed) / secs,
        requests=total,
        failed=failed + errors,
        seconds=secs,
        p50_ms=_duration_ms(p50.group(1)) if p50 else float("nan"),
        p99_ms=_duration_ms(p99.group(1)) if p99 else float("nan"),
        generator_cpu_s=cpu_s,
    )


def wrk(
    url: str,
    seconds: float,
    connections: int,
    *,
    post_event_keys: list[str] | None = None,
    threads: int = 1,
) -> HttpRun:
    """Closed loop for `seconds`: `connections` keep-alive connections, back to back. With
    `post_event_keys`, POST events (rotating the keys); else GET `url`."""
    command = [
        _require("wrk"),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    with tempfile.TemporaryDirectory() as scratch:
        if post_event_keys:
            script = Path(scratch) / "post_events.lua"
            script.write_text(_WRK_POST_EVENTS)
            command += ["-s", str(script), url, "--", *post_event_keys]
        else:
            command.append(url)
        before = _children_cpu()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        cpu = _children_cpu() - before
    return parse_wrk(done.stdout, cpu)


def hey_post_events(url: str, count: int, connections: int, key: str) -> HttpRun:
    """`count` POSTs of one event body (one key), `connections` at a time. hey gives each of
    its workers count // connections requests, so `count` is rounded down to a multiple."""
    count -= count % connections
    command = [
        _require("hey"),
        "-n",
        str(count),
        "-c",
        str(connections),
        "-m",
        "POST",
        "-T",
        "application/json",
        "-H",
        f"Authorization: Bearer {key}",
        "-d",
        EVENT_BODY,
        "-t",
        "20",
        url,
    ]
    before = _children_cpu()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    cpu = _children_cpu() - before
    out = done.stdout
    total_s = float(re.search(r"Total:\s+([\d.]+) secs", out).group(1))  # type: ignore[union-attr]
    ok = sum(int(n) for n in re.findall(r"\[2\d\d\]\s+(\d+) responses", out))
    statuses = sum(int(n) for n in re.findall(r"\[\d+\]\s+(\d+) responses", out))
    p50 = re.search(r"50%+ in ([\d.]+) secs", out)
    p99 = re.search(r"99%+ in ([\d.]+) secs", out)
    return HttpRun(
        rate=ok / total_s,
        requests=count,
        failed=count - ok if statuses else count,
        seconds=total_s,
        p50_ms=float(p50.group(1)) * 1000 if p50 else float("nan"),
        p99_ms=float(p99.group(1)) * 1000 if p99 else float("nan"),
        generator_cpu_s=cpu,
    )
