"""Prometheus metrics, on a registry per app so several apps in one process never collide.

With ``tierwise serve --workers N`` each worker is its own process and keeps its own counts, so a
scrape that lands on one worker would see only that worker's share. The supervisor therefore
sets ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) before the workers
start: every worker writes its values to files there, and ``/metrics`` sums them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from tierwise.service.online.stats import OnlineView

if TYPE_CHECKING:
    from tierwise.service.routing import Routed

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def scrape(registry: CollectorRegistry) -> bytes:
    """This app's metrics, or in multiprocess mode every live and past worker's, summed."""
    if not multiprocess():
        return generate_latest(registry)
    merged = CollectorRegistry()
    MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return generate_latest(merged)


def worker_exit() -> None:
    """Drop this worker's live gauges from the shared files; its counters keep counting."""
    if multiprocess():
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)


@dataclass
class Metrics:
    registry: CollectorRegistry
    routes: Counter
    route_latency: Histogram
    outcomes: Counter
    policy_info: Gauge
    policy_swaps: Counter
    policy_refused: Counter
    decisions_dropped: Counter
    journal_bytes: Gauge
    segments_bytes: Gauge
    segment_files: Gauge
    http_responses: Counter
    queue_open: Gauge
    health_degraded: Gauge
    drift_flagged: Gauge
    online_drift_flagged: Gauge
    online_correction: Gauge
    online_model_success: Gauge

    def count_route(self, routed: Routed) -> None:
        """One routing decision, made for ``/v1/route`` or for the proxy."""
        d = routed.decision
        if not routed.logged:
            self.decisions_dropped.inc()
        self.routes.labels(d.tier, d.profile, d.harness, str(d.explored).lower()).inc()
        self.route_latency.labels(d.tier, d.profile).observe(routed.latency_ms / 1000.0)


def make_metrics() -> Metrics:
    reg = CollectorRegistry()
    return Metrics(
        registry=reg,
        routes=Counter("tierwise_routes_total", "Routing decisions", ["tier", "profile", "harness", "explored"],
                       registry=reg),
        route_latency=Histogram("tierwise_route_latency_seconds", "Time to decide, scoring included",
                                ["tier", "profile"], buckets=LATENCY_BUCKETS, registry=reg),
        outcomes=Counter("tierwise_outcomes_total", "Outcome reports by next step", ["next"], registry=reg),
        # livemax: a version is active if any live worker serves it.
        policy_info=Gauge("tierwise_policy_active", "1 for the active policy version", ["version"],
                          registry=reg, multiprocess_mode="livemax"),
        policy_swaps=Counter("tierwise_policy_swaps_total", "Hot reloads applied", registry=reg),
        policy_refused=Counter("tierwise_policy_refused_total", "Policy versions refused on load",
                               registry=reg),
        decisions_dropped=Counter("tierwise_decisions_dropped_total",
                                  "Decisions answered but not logged: the journal refused the write", registry=reg),
        # Disk use of the shared telemetry folder, measured at scrape time; every worker sees the same files.
        journal_bytes=Gauge("tierwise_telemetry_journal_bytes", "journal.sqlite with its WAL and shared memory",
                            registry=reg, multiprocess_mode="mostrecent"),
        segments_bytes=Gauge("tierwise_telemetry_segments_bytes", "Parquet segments, all tables",
                             registry=reg, multiprocess_mode="mostrecent"),
        segment_files=Gauge("tierwise_telemetry_segment_files", "Parquet segment files, all tables",
                            registry=reg, multiprocess_mode="mostrecent"),
        # By route template (bounded: unmatched paths are "unmatched") and status class, for 5xx alerts.
        http_responses=Counter("tierwise_http_responses_total", "HTTP responses by route and status class",
                               ["handler", "code"], registry=reg),
        # Measured at scrape time, like the disk gauges: the same journal and registry for every worker.
        queue_open=Gauge("tierwise_human_queue_open", "Open human-queue items", registry=reg,
                         multiprocess_mode="mostrecent"),
        health_degraded=Gauge("tierwise_health_degraded", "1 while /healthz reports degraded", registry=reg,
                              multiprocess_mode="mostrecent"),
        drift_flagged=Gauge("tierwise_drift_flagged", "1 if the newest retune run flagged drift, 0 if not, "
                            "-1 before the first retune or without a registry", registry=reg,
                            multiprocess_mode="mostrecent"),
        # Online adaptation, computed from the journal at scrape time, so every worker agrees.
        online_drift_flagged=Gauge("tierwise_online_drift_flagged", "1 while a detected change raises exploration on a "
                            "(profile, tier)", ["profile", "tier"], registry=reg, multiprocess_mode="mostrecent"),
        online_correction=Gauge("tierwise_online_correction", "Observed minus predicted success, shrunk, added "
                                "to the tier score", ["profile", "tier"], registry=reg,
                                multiprocess_mode="mostrecent"),
        online_model_success=Gauge("tierwise_online_model_success", "Forgetting-weighted first-attempt success "
                                   "per model", ["model"], registry=reg, multiprocess_mode="mostrecent"),
    )


def publish_online(m: Metrics, view: OnlineView) -> None:
    """The online view as gauges: drift flags, score corrections, per-model success."""
    for (profile, tier), st in view.tiers.items():
        m.online_drift_flagged.labels(profile, tier).set(1 if (profile, tier) in view.drifting else 0)
        m.online_correction.labels(profile, tier).set(st.correction)
    for model, (_, success) in view.models.items():
        m.online_model_success.labels(model).set(success)
