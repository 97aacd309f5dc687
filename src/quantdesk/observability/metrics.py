"""Prometheus metrics: one registry per app, so tests and several apps never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "quantdesk_http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "quantdesk_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "quantdesk_http_requests_in_flight",
            "HTTP requests being served.",
            registry=self.registry,
        )
        self.logins = Counter(
            "quantdesk_logins_total",
            "Login attempts by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.risk_rejections = Counter(
            "quantdesk_risk_rejections_total",
            "Orders refused by the risk checks, by reason code.",
            ["reason"],
            registry=self.registry,
        )
        self.risk_halts = Counter(
            "quantdesk_risk_halts_total",
            "Accounts halted by the risk monitor, by kind (daily_loss, drawdown).",
            ["kind"],
            registry=self.registry,
        )
        self.kill_switch = Gauge(
            "quantdesk_kill_switch_engaged",
            "1 while a kill switch is engaged, by scope (global or user:<id>).",
            ["scope"],
            registry=self.registry,
        )
        self.errors = Counter(
            "quantdesk_unhandled_errors_total",
            "Unhandled server errors.",
            registry=self.registry,
        )
