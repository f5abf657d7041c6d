"""Plain counters the webhook server keeps per path, read by observe/metrics.py's
`WebhookCollector` at scrape time (controller-runtime's webhook metrics)."""

from __future__ import annotations

from trio_controller.observe.stats import Histogram

__all__ = ["WEBHOOK_LATENCY_BUCKETS", "WebhookStats"]

# Prometheus' default buckets, as controller-runtime's webhook latency histogram uses.
WEBHOOK_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WebhookStats:
    """Requests by (webhook path, HTTP code), latency and requests in flight per path."""

    __slots__ = ("in_flight", "latency", "requests")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.in_flight: dict[str, int] = {}

    def register(self, webhook: str) -> None:
        """Make `webhook`'s series exist (zero) before its first request."""
        self.latency.setdefault(webhook, Histogram(WEBHOOK_LATENCY_BUCKETS))
        self.in_flight.setdefault(webhook, 0)

    def started(self, webhook: str) -> None:
        self.in_flight[webhook] = self.in_flight.get(webhook, 0) + 1

    def finished(self, webhook: str, code: int, seconds: float) -> None:
        self.in_flight[webhook] -= 1
        key = (webhook, str(code))
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.latency.get(webhook)
        if histogram is None:
            histogram = self.latency[webhook] = Histogram(WEBHOOK_LATENCY_BUCKETS)
        histogram.observe(seconds)
