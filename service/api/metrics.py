"""Prometheus metrics, on a registry per app so several apps in one process never collide."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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


def make_metrics() -> Metrics:
    reg = CollectorRegistry()
    return Metrics(
        registry=reg,
        routes=Counter("tierwise_routes_total", "Routing decisions", ["tier", "profile", "harness", "explored"],
                       registry=reg),
        route_latency=Histogram("tierwise_route_latency_seconds", "Time to decide, scoring included",
                                ["tier", "profile"], buckets=LATENCY_BUCKETS, registry=reg),
        outcomes=Counter("tierwise_outcomes_total", "Outcome reports by next step", ["next"], registry=reg),
        policy_info=Gauge("tierwise_policy_active", "1 for the active policy version", ["version"],
                          registry=reg),
        policy_swaps=Counter("tierwise_policy_swaps_total", "Hot reloads applied", registry=reg),
        policy_refused=Counter("tierwise_policy_refused_total", "Policy versions refused on load",
                               registry=reg),
    )
