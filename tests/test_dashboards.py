"""The operator dashboards checked in under ``deploy/``: the Grafana dashboard and the Prometheus
alert rules parse, and every series they query is one ``/metrics`` exposes. Plus the series the
alerts added: HTTP responses by status class and the gauges measured at scrape time."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from conftest import MECHANICAL, REPO, to_human
from prometheus_client.parser import text_string_to_metric_families

from tierwise.service.api.metrics import make_metrics

DEPLOY = REPO / "deploy"
SERIES = re.compile(r"\btierwise_[a-z0-9_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exposed() -> set[str]:
    """Every series name the service's metrics registry can expose."""
    names = set()
    for family in make_metrics().registry.collect():
        names |= {family.name + s for s in SUFFIXES[family.type]}
    return names


def test_grafana_dashboard_queries_only_exposed_series() -> None:
    dash = json.loads((DEPLOY / "grafana" / "tierwise.json").read_text())
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 10
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    used = {m for e in exprs for m in SERIES.findall(e)}
    assert used and used <= exposed(), used - exposed()
    for needed in ("tierwise_human_queue_open", "tierwise_http_responses_total", "tierwise_drift_flagged",
                   "tierwise_route_latency_seconds_bucket", "tierwise_routes_total"):
        assert needed in used


def test_alert_rules_cover_the_issue_and_query_only_exposed_series() -> None:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} == {"TierwiseHigh5xxRate", "TierwiseRouteP99OverBudget", "TierwiseDriftFlagged",
                                           "TierwiseHealthDegraded", "TierwiseHumanQueueGrowing"}
    for r in rules:
        used = set(SERIES.findall(r["expr"]))
        assert used and used <= exposed(), (r["alert"], used - exposed())
        assert r["labels"]["severity"] in ("page", "warning") and r["annotations"]["summary"]


def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_scrape_reports_queue_health_drift_and_responses_by_status_class(client: Any) -> None:
    item = to_human(client, MECHANICAL)
    assert client.get("/no/such/path").status_code == 404
    # A registry-less server asked for a registry version: 503 (RegistryUnavailable), a server-side class.
    assert client.get("/ui/policy/7").status_code == 503
    m = scrape(client)
    assert m[("tierwise_human_queue_open", ())] == 1.0
    assert m[("tierwise_health_degraded", ())] == 0.0
    assert m[("tierwise_drift_flagged", ())] == -1.0  # no registry: no retune to read
    assert m[("tierwise_http_responses_total", (("code", "2xx"), ("handler", "/v1/route")))] == 1.0
    assert m[("tierwise_http_responses_total", (("code", "4xx"), ("handler", "unmatched")))] == 1.0
    assert m[("tierwise_http_responses_total", (("code", "5xx"), ("handler", "/ui/policy/{version}")))] == 1.0
    assert client.post(f"/v1/queue/{item}/resolve", json={"resolved_by": "ana"}).status_code == 200
    # Without keys the console is open, and a stray Authorization header does not break it.
    assert client.get("/ui/queue", headers={"Authorization": "Bearer whatever"}).status_code == 200
    assert scrape(client)[("tierwise_human_queue_open", ())] == 0.0
