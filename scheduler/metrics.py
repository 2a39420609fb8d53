"""What ``GET /metrics`` exposes, in Prometheus' text format.

Two kinds of numbers. Counters and histograms of what this process did (sends, their
duration and lateness, inbound replies, refused webhooks) live on :data:`REGISTRY`, Tend's
own registry rather than ``prometheus_client``'s global one, so that importing a library
that registers metrics there changes nothing, and several apps in one process (the tests)
share one set of series. They are per process: the worker's sends are counted in the worker
(``TEND_METRICS_PORT`` serves them there), the web's replies and webhooks in the web.

The ledger's numbers (deliveries by status and channel, the newest worker heartbeat) are
read from the database at scrape time by :class:`LedgerCollector`, the same from any process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scheduler.ledger import DeliveryStatus, Ledger, LedgerError

__all__ = [
    "FORM_REFUSALS",
    "INBOUND_REPLIES",
    "LATENESS",
    "REGISTRY",
    "SENDS",
    "SEND_DURATION",
    "WEBHOOKS_REJECTED",
    "LedgerCollector",
    "render",
]

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

SEND_DURATION = Histogram(
    "tend_send_duration_seconds",
    "Time the provider took for one send attempt (or to say an unsure one had gone out)",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
LATENESS = Histogram(
    "tend_delivery_lateness_seconds",
    "Sent time minus due time, for deliveries sent (retries and quiet hours included)",
    ["channel"],
    buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400),
    registry=REGISTRY,
)
SENDS = Counter(
    "tend_sends",
    "Send attempts by outcome: sent, transient, gave_up, permanent, opted_out",
    ["channel", "outcome"],
    registry=REGISTRY,
)
INBOUND_REPLIES = Counter(
    "tend_inbound_replies",
    "Inbound replies by command",
    ["command"],
    registry=REGISTRY,
)
WEBHOOKS_REJECTED = Counter(
    "tend_webhooks_rejected",
    "Webhook requests refused, by reason: forged, unconfigured, too_large, not_form, malformed",
    ["route", "reason"],
    registry=REGISTRY,
)

# The reason a webhook was refused, by the status of the answer that refused its form.
FORM_REFUSALS = {400: "malformed", 413: "too_large", 415: "not_form"}

DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)


@dataclass(frozen=True)
class _Reading:
    """One read of the ledger: delivery counts, the newest live heartbeat; None if it failed."""

    deliveries: dict[tuple[str, str], int] | None
    last_beat: datetime | None


class LedgerCollector:
    """The ledger's numbers, read at scrape time, at most once every `cache_seconds`.

    A database that cannot be read gives ``tend_ledger_up 0`` and no ledger numbers rather
    than a failed scrape: the process counters are still worth having, and the 0 is the alert.
    """

    def __init__(
        self,
        ledger: Ledger,
        clock: Callable[[], datetime],
        *,
        cache_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[float, _Reading] | None = None

    def _read(self) -> _Reading:
        with self._lock:  # concurrent scrapes wait for one query rather than each run it
            if self._cached is not None:
                read_at, reading = self._cached
                if self._monotonic() - read_at < self.cache_seconds:
                    return reading
            reading = self._query()
            self._cached = (self._monotonic(), reading)
            return reading

    def _query(self) -> _Reading:
        try:
            counts = self.ledger.reports.counts_by_channel()
            last = self.ledger.workers.newest_beat()
        except LedgerError as exc:
            log.warning("metrics: cannot read the ledger: %s", type(exc).__name__)
            return _Reading(None, None)
        return _Reading(counts, last)

    def collect(self) -> Iterator[Metric]:
        reading = self._read()
        up = GaugeMetricFamily(
            "tend_ledger_up", "1 if the ledger could be read for this scrape, else 0"
        )
        up.add_metric([], 0 if reading.deliveries is None else 1)
        yield up
        if reading.deliveries is None:
            return
        deliveries = GaugeMetricFamily(
            "tend_deliveries",
            "Deliveries in the ledger by status and channel",
            labels=["status", "channel"],
        )
        # Every status of every channel seen, zeros included: an alert on `failed` has a
        # series to watch before the first failure.
        channels = sorted({channel for _, channel in reading.deliveries})
        statuses = sorted(set(DELIVERY_STATUSES) | {s for s, _ in reading.deliveries})
        for status in statuses:
            for channel in channels:
                deliveries.add_metric(
                    [status, channel], reading.deliveries.get((status, channel), 0)
                )
        yield deliveries
        if reading.last_beat is not None:
            age = GaugeMetricFamily(
                "tend_worker_heartbeat_age_seconds",
                "Seconds since the newest heartbeat of a running worker",
            )
            age.add_metric([], max(0.0, (self.clock() - reading.last_beat).total_seconds()))
            yield age


class _Together:
    """Several collectors exposed as one."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self.collectors = tuple(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def render(ledger: LedgerCollector | None = None) -> tuple[bytes, str]:
    """The exposition of this process's metrics and, if given, the ledger's; its content type."""
    collectors: list[Collector] = [REGISTRY]
    if ledger is not None:
        collectors.append(ledger)
    return generate_latest(_Together(collectors)), CONTENT_TYPE_LATEST
