"""prometheus_client collectors whose metrics are read at scrape time: gauges of an orchestrator's or a
registry's state (`StateCollector`), and the shared store's availability (`StoreCollector`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.metrics_core import GaugeMetricFamily, Metric

    from worker_abstraction.stores.availability import StoreAvailability


def gauge_families(gauges: Iterable[tuple[str, str, tuple[str, ...]]]) -> list[GaugeMetricFamily]:
    from prometheus_client.metrics_core import GaugeMetricFamily

    return [GaugeMetricFamily(name, text, labels=list(labels)) for name, text, labels in gauges]


class StateCollector:
    """A prometheus_client collector of gauges made at scrape time; `describe` names them without reading."""

    def __init__(
        self, collect: Callable[[], Sequence[Metric]], gauges: Sequence[tuple[str, str, tuple[str, ...]]]
    ) -> None:
        self._collect = collect
        self._gauges = gauges

    def describe(self) -> Sequence[Metric]:
        return gauge_families(self._gauges)

    def collect(self) -> Sequence[Metric]:
        return self._collect()


class StoreCollector:
    """The shared store's two metrics, read at scrape time (a bool and an int: safe from the scraping thread)."""

    def __init__(self) -> None:
        self.availability: StoreAvailability | None = None

    def describe(self) -> Sequence[Metric]:
        return self._families(True, 0)

    def collect(self) -> Sequence[Metric]:
        found = self.availability
        return [] if found is None else self._families(found.available, found.errors)

    @staticmethod
    def _families(available: bool, errors: int) -> Sequence[Metric]:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

        up = GaugeMetricFamily("wa_store_available", "1 while the shared store (NATS) answers, 0 during an outage.")
        up.add_metric([], 1.0 if available else 0.0)
        failed = CounterMetricFamily("wa_store_errors", "Calls to the shared store that found it not answering.")
        failed.add_metric([], errors)
        return [up, failed]
