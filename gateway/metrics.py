"""Prometheus metrics shared across the gateway (outbound counters live in conversations.delivery)."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES_IN = Counter("gateway_messages_in_total", "Inbound messages by channel and outcome",
                      ["channel", "outcome"])
WEBHOOK_LATENCY = Histogram("gateway_webhook_seconds", "Webhook handling time", ["route"],
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
WEBHOOK_REJECTED = Counter("gateway_webhook_rejected_total", "Webhooks refused", ["route", "reason"])
DELIVERY_STATUS = Counter("gateway_delivery_status_total", "Provider delivery status callbacks",
                          ["channel", "status"])
