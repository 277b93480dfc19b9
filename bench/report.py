"""bench/run.py's output: the full table, the README's ratio block and the history entry."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

TARGETS = {
    "api_ratio": 0.7,
    "e2e_p99_ms": 50.0,
    "audit_ratio": 0.85,
    "rss_mb": 150.0,
}
README_START, README_END = "<!-- bench -->", "<!-- /bench -->"
HISTORY_HEADING = "## bench/run.py runs"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _k(value: float) -> str:
    return f"{value:,.0f}"


def _spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}"


def _ceiling(r: dict[str, Any]) -> tuple[str, float]:
    name, load = max(r["bulk_loads"].items(), key=lambda item: item[1]["median"])
    return name, float(load["median"])


def derived(r: dict[str, Any]) -> dict[str, Any]:
    """The ratios and verdicts every output shares."""
    ceiling_name, ceiling = _ceiling(r)
    audit_ratio = r["audit"]["rate"] / ceiling
    sat = r["saturation"]
    rss = {
        "events-api": r["api_cost"]["cost"]["all"]["peak_rss_mb"],
        "audit": r["audit"]["cost"]["all"]["peak_rss_mb"],
        "notifier": r["notifier"]["cost"]["all"]["peak_rss_mb"],
    }
    return {
        "ceiling_name": ceiling_name,
        "ceiling": ceiling,
        "audit_ratio": audit_ratio,
        "api_ratio": sat["ratio"],
        "e2e_p99": r["e2e"]["e2e_p99_ms"],
        "rss": rss,
        "met": {
            "api_ratio": sat["ratio"] >= TARGETS["api_ratio"],
            "e2e_p99_ms": r["e2e"]["e2e_p99_ms"] < TARGETS["e2e_p99_ms"],
            "audit_ratio": audit_ratio >= TARGETS["audit_ratio"],
            "rss_mb": all(v < TARGETS["rss_mb"] for v in rss.values()),
        },
    }


def _growth(cost: dict[str, dict[str, float]]) -> float:
    """CPU per event over the whole phase as a multiple of the first checkpoint's (flat: 1.0)."""
    return cost["all"]["cpu_ms_per_event"] / cost["first"]["cpu_ms_per_event"]


def _cost_row(app: str, cost: dict[str, dict[str, float]], rate: float, unit: str) -> str:
    first, whole = cost["first"], cost["all"]
    return (
        f"| cost {app} @ {_k(rate)} {unit} | {first['cpu_ms_per_event']:.3f} ms CPU/event,"
        f" peak RSS {first['peak_rss_mb']:.0f} MB after {_k(first['events'])};"
        f" {whole['cpu_ms_per_event']:.3f} ms, {whole['peak_rss_mb']:.0f} MB after"
        f" {_k(whole['events'])} (CPU/event x{_growth(cost):.2f},"
        f" RSS {whole['peak_rss_mb'] - first['peak_rss_mb']:+.0f} MB) | flat;"
        f" RSS < {TARGETS['rss_mb']:.0f} MB ({verdict(whole['peak_rss_mb'] < TARGETS['rss_mb'])}) |"
    )


def table(r: dict[str, Any]) -> str:
    d = derived(r)
    sat, e2e = r["saturation"], r["e2e"]
    shape = r["audit_shape"]
    loads = "; ".join(
        f"{name}: {load['median']:,.0f} rows/s (median of {len(load['runs'])}:"
        f" {_spread(load['runs'])})"
        for name, load in r["bulk_loads"].items()
    )
    trivial_cores = max(x["generator_cores"] for x in sat["trivial"] + sat["events"])
    lines = [
        "| Measure | Result | Target |",
        "|---|---|---|",
        f"| raw kafka-python produce / consume (median of {len(r['raw_consume_runs'])})"
        f" | {_k(r['raw_produce_per_s'])} / {_k(r['raw_consume_per_s'])} msg/s | reference |",
        f"| idempotent bulk loads of the same rows, {shape['writers']} connections x"
        f" {shape['batch_size']} rows | {loads} | ceiling = the faster |",
        f"| audit sink, {_k(r['audit']['events'])} envelopes from Kafka"
        f" | {_k(r['audit']['rate'])} rows/s = **{d['audit_ratio']:.2f}x** the ceiling"
        f" ({d['ceiling_name']}) | >= {TARGETS['audit_ratio']}x"
        f" ({verdict(d['met']['audit_ratio'])}) |",
        f"| GET /healthz of events-api at saturation ({r['params']['connections']} connections,"
        f" wrk, median of {len(sat['trivial'])})"
        f" | {_k(sat['trivial_rate'])} req/s ({_spread([x['rate'] for x in sat['trivial']])})"
        " | baseline |",
        f"| POST /api/v1/events at saturation (same server, interleaved)"
        f" | {_k(sat['events_rate'])} req/s = **{sat['ratio']:.2f}x** /healthz"
        f" (pairs: {', '.join(f'{x:.2f}' for x in sat['pair_ratios'])});"
        f" {sat['cpu_ms_per_event']:.3f} ms CPU per accepted event (relay included)"
        f" | >= {TARGETS['api_ratio']}x ({verdict(d['met']['api_ratio'])}) |",
        f"| load generator (wrk) | at most {trivial_cores:.2f} of a core | not the bottleneck |",
        f"| end-to-end 202 -> audit row @ {_k(e2e['offered'])} ev/s offered (half of saturation)"
        f" | p50 {e2e['e2e_p50_ms']:.0f} ms, **p99 {e2e['e2e_p99_ms']:.0f} ms**"
        f" (n={_k(e2e['e2e_n'])}, missing {e2e['e2e_missing']}); API p50"
        f" {e2e['api_p50_ms']:.1f} ms, p99 {e2e['api_p99_ms']:.1f} ms; generator"
        f" {e2e['generator_cores']:.2f} core | p99 < {TARGETS['e2e_p99_ms']:.0f} ms"
        f" ({verdict(d['met']['e2e_p99_ms'])}) |",
        _cost_row("events-api", r["api_cost"]["cost"], r["api_cost"]["rate"], "req/s (hey)"),
        _cost_row("audit", r["audit"]["cost"], r["audit"]["rate"], "rows/s"),
        _cost_row("notifier", r["notifier"]["cost"], r["notifier"]["rate"], "deliveries/s"),
        f"| notifier delivery to a local webhook | {_k(r['notifier']['rate'])} deliveries/s | - |",
        f"| HTTP failures (non-2xx or socket errors) | {sat['failed']} at saturation,"
        f" {e2e['errors']} end-to-end, {r['api_cost']['failed']} in the cost phase | 0 |",
    ]
    return "\n".join(lines)


def footer(r: dict[str, Any]) -> str:
    run = r["load"]["run"]
    phases = ", ".join(
        f"{name} {v['median']:.1f}"
        for name, v in r["load"]["phases"].items()
        if not math.isnan(v["median"])
    )
    p = r["params"]
    return (
        f"{r['when']}; `{r['command']}`: {_k(p['events'])} audit envelopes, {_k(p['api_events'])}"
        f" API events, {_k(p['notify_events'])} notifier envelopes, {p['seconds']:.0f} s per"
        f" saturation run; {p['cpus']} CPUs shared by broker, database, apps and load"
        f" generators. 1-min load average during the run: min {run['min']:.1f}, median"
        f" {run['median']:.1f}, max {run['max']:.1f} (per phase, median: {phases})."
    )


def readme_block(r: dict[str, Any]) -> str:
    """Only ratios (and the one latency target) with the baselines of the same run."""
    d = derived(r)
    sat, e2e = r["saturation"], r["e2e"]
    api_cost, audit_cost = r["api_cost"]["cost"], r["audit"]["cost"]
    rows = [
        "| Measure | Ratio | Baseline, same run | Target |",
        "|---|---|---|---|",
        f"| events-api `POST /api/v1/events` at saturation | **{sat['ratio']:.2f}x**"
        f" | its own `GET /healthz`: {_k(sat['trivial_rate'])} req/s"
        f" | >= {TARGETS['api_ratio']}x ({verdict(d['met']['api_ratio'])}) |",
        f"| audit sink | **{d['audit_ratio']:.2f}x** | fastest idempotent bulk load of the same"
        f" rows ({d['ceiling_name']}): {_k(d['ceiling'])} rows/s"
        f" | >= {TARGETS['audit_ratio']}x ({verdict(d['met']['audit_ratio'])}) |",
        f"| end-to-end p99, 202 -> audit row | **{e2e['e2e_p99_ms']:.0f} ms** | at half the"
        f" saturation rate: {_k(e2e['offered'])} events/s"
        f" | < {TARGETS['e2e_p99_ms']:.0f} ms ({verdict(d['met']['e2e_p99_ms'])}) |",
        f"| CPU per event, 100k vs 10k events | events-api x{_growth(api_cost):.2f},"
        f" audit x{_growth(audit_cost):.2f} | the first 10k events of the same run | flat (1.0) |",
    ]
    return "\n".join(
        [
            README_START,
            "",
            "```bash",
            f".venv/bin/python {r['command']}   # one command, every figure; history:"
            " docs/benchmarks.md",
            "```",
            "",
            *rows,
            "",
            f"One run, {r['when']}, on this 2-core machine shared with other work (1-min load"
            f" average median {r['load']['run']['median']:.1f}); every run and its absolute"
            " figures: [docs/benchmarks.md](docs/benchmarks.md).",
            "",
            README_END,
        ]
    )


def write_readme(path: Path, r: dict[str, Any]) -> None:
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: no {README_START} ... {README_END} block to rewrite")
    path.write_text(text[:start] + readme_block(r) + text[end + len(README_END) :])


def append_history(path: Path, r: dict[str, Any]) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks and measured figures\n"
    if HISTORY_HEADING not in text:
        text = text.rstrip("\n") + f"\n\n{HISTORY_HEADING}\n\nNewest last; each run as printed.\n"
    entry = f"\n### {r['when']} (`{r['command']}`)\n\n{table(r)}\n\n{footer(r)}\n"
    path.write_text(text.rstrip("\n") + "\n" + entry)
