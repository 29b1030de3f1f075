"""Two versions of one capability, for the version tests with real processes."""

from __future__ import annotations

from worker_abstraction import BaseWorker, capability


class SummarizeOne(BaseWorker):
    @capability(name="summarize", version="1.0.0", deprecated="use ^2")
    async def summarize(self, text: str) -> dict[str, str]:
        return {"version": "1.0.0", "summary": text[:10]}


class SummarizeTwo(BaseWorker):
    @capability(name="summarize", version="2.0.0")
    async def summarize(self, text: str) -> dict[str, str]:
        return {"version": "2.0.0", "summary": text[:5]}
