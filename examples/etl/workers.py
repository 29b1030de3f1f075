"""The steps of a small ETL pipeline, as one worker: extract orders from a CSV file and split them into
chunks, transform each chunk (its amounts in euros, by country), aggregate the chunks, report; and notify,
the step a workflow runs when it fails.

Run it from the repository root (see examples/etl/README.md for the workflow files and the commands):

    wa worker examples.etl.workers:EtlWorker --registry 127.0.0.1:50051
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from worker_abstraction import BaseWorker, TaskContext, capability

logger = logging.getLogger(__name__)


class EtlWorker(BaseWorker):
    """Extract, transform, aggregate, report, notify."""

    # Plain `def`s read files: the SDK runs them in a thread pool, so they never stall the worker.
    @capability
    def extract(self, source: str, ctx: TaskContext, chunk_size: int = 4) -> dict[str, Any]:
        """Read the orders of a CSV file and split them into chunks.

        Args:
            source: The CSV file (columns order, country, currency, amount), relative to the worker's directory.
            ctx: Injected task context.
            chunk_size: How many orders a chunk holds.

        Returns:
            {"orders": how many, "chunks": the orders in lists of `chunk_size`}.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        with Path(source).open(newline="", encoding="utf-8") as file:
            orders = [
                {"order": row["order"], "country": row["country"], "currency": row["currency"],
                 "amount": float(row["amount"])}
                for row in csv.DictReader(file)
            ]  # fmt: skip
        ctx.report_progress(1.0, f"{len(orders)} orders read")
        return {
            "orders": len(orders),
            "chunks": [orders[i : i + chunk_size] for i in range(0, len(orders), chunk_size)],
        }

    @capability
    def transform(
        self, chunk: list[dict[str, Any]], ctx: TaskContext, rates: dict[str, float] | None = None, rates_file: str = ""
    ) -> dict[str, Any]:
        """Convert a chunk's amounts to euros and total them by country.

        Args:
            chunk: Orders, as `extract` gives them.
            ctx: Injected task context.
            rates: Euros per unit of each currency.
            rates_file: A JSON file of such rates, read at every run (used instead of `rates` when given).

        Returns:
            {"orders": how many, "eur": their total in euros, "by_country": the total of each country}.

        Raises:
            LookupError: an order's currency has no rate.
        """
        if rates_file:
            rates = json.loads(Path(rates_file).read_text(encoding="utf-8"))
        rates = rates or {}
        by_country: dict[str, float] = {}
        for order in chunk:
            rate = rates.get(order["currency"])
            if rate is None:
                raise LookupError(f"no EUR rate for {order['currency']} (order {order['order']})")
            by_country[order["country"]] = by_country.get(order["country"], 0.0) + order["amount"] * rate
        return {
            "orders": len(chunk),
            "eur": round(sum(by_country.values()), 2),
            "by_country": {country: round(eur, 2) for country, eur in by_country.items()},
        }

    @capability
    async def aggregate(self, parts: list[dict[str, Any]], ctx: TaskContext) -> dict[str, Any]:
        """Add the chunks' totals up.

        Args:
            parts: What `transform` gave for each chunk.
            ctx: Injected task context.

        Returns:
            {"orders": how many, "eur": their total in euros, "by_country": each country's, largest first}.
        """
        by_country: dict[str, float] = {}
        for part in parts:
            for country, eur in part["by_country"].items():
                by_country[country] = by_country.get(country, 0.0) + eur
        ranked = sorted(by_country.items(), key=lambda item: (-item[1], item[0]))
        return {
            "orders": sum(part["orders"] for part in parts),
            "eur": round(sum(by_country.values()), 2),
            "by_country": {country: round(eur, 2) for country, eur in ranked},
        }

    @capability
    async def report(self, total: dict[str, Any], ctx: TaskContext, title: str = "Orders") -> dict[str, str]:
        """One line that says it all.

        Args:
            total: What `aggregate` gave.
            ctx: Injected task context.
            title: What the line starts with.

        Returns:
            {"report": the line}.
        """
        countries = ", ".join(f"{country} {eur:,.2f}" for country, eur in total["by_country"].items())
        return {"report": f"{title}: {total['orders']} orders, {total['eur']:,.2f} EUR ({countries})"}

    @capability
    async def notify(self, step: str, error: str, ctx: TaskContext) -> dict[str, str]:
        """Say which step failed and why (the workflow's on_failure step; a real one would page someone).

        Args:
            step: The step that failed.
            error: Its error.
            ctx: Injected task context.

        Returns:
            {"alert": what was said}.
        """
        alert = f"ETL failed at step {step!r}: {error}"
        logger.warning("%s", alert)
        return {"alert": alert}
