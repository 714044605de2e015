"""Prometheus metrics of the router (served at /metrics), one registry per router."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "RouterMetrics"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class RouterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("sovereign_router_requests", "Requests by outcome "
                                "(answered, below-threshold, crystallized, no-answer, invalid)", ["outcome"],
                                registry=r)
        self.attempts = Counter("sovereign_router_attempts", "Tier attempts by decision", ["tier",
                                                                                           "decision"],
                                registry=r)
        self.egress = Counter("sovereign_router_egress_decisions", "Egress gate decisions",
                              ["provider", "decision"], registry=r)
        self.crystal_hits = Counter("sovereign_router_crystal_hits", "Crystal hits by match type", ["match"],
                                    registry=r)
        self.tier_latency = Histogram("sovereign_router_tier_latency_seconds", "Latency of a tier's answer",
                                      ["tier"], buckets=_BUCKETS, registry=r)
        self.request_latency = Histogram("sovereign_router_request_latency_seconds",
                                         "Latency of a request through the router", buckets=_BUCKETS,
                                         registry=r)
        self.spool_pending = Gauge("sovereign_router_spool_pending", "Records waiting in the spool",
                                   registry=r)
        self.crystals = Gauge("sovereign_router_crystals_indexed", "Crystals in the lookup index", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
