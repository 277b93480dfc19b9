"""ServiceMonitor, PrometheusRule (with runbook links) and a Grafana dashboard per app.

The expressions use the metric names the apps export (`apps/<app>/metrics.py`, prefixed with the
catalog's `metrics_prefix`); the `job` label is the Service name, as the ServiceMonitor sets it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from infra.contracts import APP_NAMESPACE
from infra.gitops.catalog import AppSpec
from infra.gitops.manifests.common import (
    EnvContext,
    Manifest,
    app_object,
    metadata,
    selector,
)
from infra.gitops.manifests.workload import HTTP_PORT_NAME

RUNBOOKS_DOC = "docs/runbooks.md"
RUNBOOK_ANCHORS = (
    "high-error-rate",
    "high-latency-p99",
    "consumer-lag",
    "dead-letter-growth",
    "outbox-lag",
    "reminders-late",
    "reminders-overdue",
)


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    runbook: str
    """Anchor of the section in docs/runbooks.md."""
    panel: str
    """What the dashboard plots for this alert."""


def runbook_url(ctx: EnvContext, anchor: str) -> str:
    repo = ctx.cfg.gitops.repo_url.removesuffix(".git")
    return f"{repo}/blob/{ctx.cfg.gitops.target_revision}/{RUNBOOKS_DOC}#{anchor}"


def _p99(histogram: str, job: str) -> str:
    return f"histogram_quantile(0.99, sum by (le) (rate({histogram}_bucket{{{job}}}[5m])))"


def _api_alerts(spec: AppSpec, job: str) -> list[Alert]:
    app, m = spec.name, spec.metrics_prefix
    requests = f"{m}_request_duration_seconds"
    errors = (
        f'sum(rate({requests}_count{{{job},status=~"5.."}}[5m])) '
        f"/ sum(rate({requests}_count{{{job}}}[5m]))"
    )
    p99 = _p99(requests, job)
    outbox = f"max({m}_outbox_lag_seconds{{{job}}})"
    return [
        Alert("HighErrorRate", f"{errors} > 0.05", "10m", "critical",
              f"{app}: more than 5% of requests fail", "high-error-rate", errors),
        Alert("HighLatencyP99", f"{p99} > 0.5", "10m", "warning",
              f"{app}: p99 latency above 500 ms", "high-latency-p99", p99),
        Alert("OutboxLag", f"{outbox} > 120", "10m", "warning",
              f"{app}: accepted events wait over 2 min for Kafka", "outbox-lag", outbox),
    ]  # fmt: skip


def _consumer_errors(spec: AppSpec, job: str) -> str:
    m = spec.metrics_prefix
    if spec.name == "notifier":
        # Deliveries that ended dead (retries exhausted) among all finished deliveries.
        return (
            f'sum(rate({m}_deliveries_total{{{job},status="dead"}}[5m])) '
            f"/ sum(rate({m}_deliveries_total{{{job}}}[5m]))"
        )
    # Failed (retried) batch attempts per completed batch.
    return (
        f"sum(rate({m}_batch_failures_total{{{job}}}[5m])) "
        f"/ sum(rate({m}_batch_seconds_count{{{job}}}[5m]))"
    )


def _reminder_alerts(spec: AppSpec, job: str) -> list[Alert]:
    """The scheduler's own signals: reminders going out late, and due ones left behind."""
    app, m = spec.name, spec.metrics_prefix
    p99 = _p99(f"{m}_lateness_seconds", job)
    overdue = f"max({m}_overdue{{{job}}})"
    return [
        Alert("RemindersLate", f"{p99} > 5", "10m", "warning",
              f"{app}: p99 reminder lateness above 5 s", "reminders-late", p99),
        Alert("RemindersOverdue", f"{overdue} > 0", "5m", "critical",
              f"{app}: due reminders not fired after 30 s", "reminders-overdue", overdue),
    ]  # fmt: skip


def alerts(spec: AppSpec, ctx: EnvContext) -> list[Alert]:
    app, m = spec.name, spec.metrics_prefix
    job = f'job="{app}",namespace="{APP_NAMESPACE}"'
    if spec.contract.kind == "producer":
        return _api_alerts(spec, job)
    extra = _reminder_alerts(spec, job) if spec.contract.produces else []
    errors = _consumer_errors(spec, job)
    p99 = _p99(f"{m}_batch_seconds", job)
    lag = f"sum({m}_consumer_lag{{{job}}})"
    dlq = f"sum(increase({m}_dead_lettered_total{{{job}}}[15m]))"
    # Sustained lag above what the maximum replica count is meant to absorb.
    lag_limit = spec.lag_threshold * spec.sizing[ctx.env].max_replicas
    return [
        Alert("HighErrorRate", f"{errors} > 0.05", "10m", "critical",
              f"{app}: more than 5% of records fail", "high-error-rate", errors),
        Alert("HighLatencyP99", f"{p99} > 10", "15m", "warning",
              f"{app}: p99 batch time above 10 s", "high-latency-p99", p99),
        Alert("ConsumerLagHigh", f"{lag} > {lag_limit}", "15m", "warning",
              f"{app}: consumer-group lag above {lag_limit} records", "consumer-lag", lag),
        Alert("DeadLetterGrowth", f"{dlq} > 0", "5m", "warning",
              f"{app}: records are being dead-lettered", "dead-letter-growth", dlq),
        *extra,
    ]  # fmt: skip


def service_monitor(spec: AppSpec, wave: int) -> Manifest:
    # No `release` label: Prometheus selects every ServiceMonitor and PrometheusRule in the
    # monitored namespaces (`infra.platform.charts.kube_prometheus_stack_values`).
    body = {
        "selector": {"matchLabels": selector(spec.name)},
        "namespaceSelector": {"matchNames": [APP_NAMESPACE]},
        "endpoints": [
            {"port": HTTP_PORT_NAME, "path": spec.probes.metrics_path, "interval": "30s"}
        ],
    }
    return app_object("monitoring.coreos.com/v1", "ServiceMonitor", spec.name, wave, body)


def prometheus_rule(spec: AppSpec, ctx: EnvContext, wave: int) -> Manifest:
    rules = [
        {
            "alert": f"{_camel(spec.name)}{alert.name}",
            "expr": alert.expr,
            "for": alert.for_,
            "labels": {"severity": alert.severity, "app": spec.name},
            "annotations": {
                "summary": alert.summary,
                "runbook_url": runbook_url(ctx, alert.runbook),
            },
        }
        for alert in alerts(spec, ctx)
    ]
    body = {"groups": [{"name": spec.name, "rules": rules}]}
    return app_object("monitoring.coreos.com/v1", "PrometheusRule", spec.name, wave, body)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


@dataclass(frozen=True)
class Panel:
    """One dashboard panel: a title and its PromQL queries (legend per query)."""

    title: str
    queries: tuple[tuple[str, str], ...]
    unit: str = "short"


PERCENTILES = (0.5, 0.95, 0.99)


def _quantiles(histogram: str, job: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (
            f"p{int(q * 100)}",
            f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket{{{job}}}[5m])))",
        )
        for q in PERCENTILES
    )


PRODUCER_JOB = f'job="events-api",namespace="{APP_NAMESPACE}"'


def overview_panels(spec: AppSpec) -> list[Panel]:
    """Rate, errors, latency percentiles, consumer lag and outbox depth, from the apps' metric
    names (`apps/<app>/metrics.py`). The API's dashboard shows the lag of the consumers of its
    topics; a consumer's shows the API's outbox depth (what is still to reach it)."""
    m = spec.metrics_prefix
    job = f'job="{spec.name}",namespace="{APP_NAMESPACE}"'
    api = PRODUCER_JOB
    consumers = "|".join(s.name for s in _consumers())
    lag_metrics = "|".join(f"{s.metrics_prefix}_consumer_lag" for s in _consumers())
    lag_all = f'sum by (job) ({{__name__=~"{lag_metrics}",job=~"{consumers}"}})'
    outbox = (("pending rows", f"sum(events_api_outbox_pending{{{api}}})"),)
    if spec.contract.kind == "producer":
        requests = f"{m}_request_duration_seconds"
        return [
            Panel(
                "Request rate", (("req/s", f"sum(rate({requests}_count{{{job}}}[5m]))"),), "reqps"
            ),
            Panel(
                "Errors (5xx share)",
                (
                    (
                        "5xx",
                        f'sum(rate({requests}_count{{{job},status=~"5.."}}[5m])) '
                        f"/ sum(rate({requests}_count{{{job}}}[5m]))",
                    ),
                ),
                "percentunit",
            ),
            Panel("Latency percentiles", _quantiles(requests, job), "s"),
            Panel("Consumer lag of its topics", (("{{job}}", lag_all),)),
            Panel("Outbox depth", outbox),
        ]
    return [
        Panel(
            "Record rate",
            (("records/s", f"sum(rate({m}_messages_processed_total{{{job}}}[5m]))"),),
            "ops",
        ),
        Panel("Errors", (("failed share", _consumer_errors(spec, job)),), "percentunit"),
        Panel("Batch latency percentiles", _quantiles(f"{m}_batch_seconds", job), "s"),
        Panel("Consumer lag", (("records", f"sum({m}_consumer_lag{{{job}}})"),)),
        Panel("Outbox depth (events-api, upstream)", outbox),
    ]


def _consumers() -> list[AppSpec]:
    from infra.gitops.catalog import APP_SPECS

    return [s for s in APP_SPECS if s.contract.kind == "consumer"]


def _panel_json(
    index: int, panel_id: int, title: str, queries: tuple[tuple[str, str], ...], unit: str
) -> Manifest:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
        "targets": [
            {"refId": chr(ord("A") + n), "expr": expr, "legendFormat": legend}
            for n, (legend, expr) in enumerate(queries)
        ],
    }


def dashboard_json(spec: AppSpec, ctx: EnvContext) -> str:
    """The overview row (rate, errors, latency percentiles, lag, outbox depth), then one panel per
    alert with the alert's own expression, so what pages is on the same screen."""
    overview = overview_panels(spec)
    panels = [
        _panel_json(index, index + 1, panel.title, panel.queries, panel.unit)
        for index, panel in enumerate(overview)
    ]
    start = len(overview) + (len(overview) % 2)  # alerts start on a fresh row
    panels += [
        _panel_json(
            start + index,
            len(overview) + index + 1,
            f"Alert {_camel(spec.name)}{alert.name}: {alert.summary.split(': ', 1)[-1]}",
            ((alert.name, alert.panel),),
            "short",
        )
        for index, alert in enumerate(alerts(spec, ctx))
    ]
    dashboard = {
        "uid": f"event-platform-{spec.name}",
        "title": f"{spec.name} ({ctx.env})",
        "tags": ["event-platform", spec.name],
        "timezone": "utc",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "panels": panels,
    }
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


def dashboard_config_map(spec: AppSpec, ctx: EnvContext, wave: int) -> Manifest:
    """Picked up by kube-prometheus-stack's Grafana sidecar via the `grafana_dashboard` label."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            f"{spec.name}-dashboard",
            spec.name,
            component="monitoring",
            wave=wave,
            extra_labels={"grafana_dashboard": "1"},
        ),
        "data": {f"{spec.name}.json": dashboard_json(spec, ctx)},
    }
