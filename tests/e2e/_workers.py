"""Workers the CLI process tests run with `wa worker _workers:EchoWorker` (cwd = this directory)."""

from __future__ import annotations

from worker_abstraction import BaseWorker, TaskContext, capability


class EchoWorker(BaseWorker):
    """One capability that succeeds and one that always fails."""

    @capability
    async def shout(self, ctx: TaskContext, text: str) -> dict[str, str]:
        """Upper-case `text`."""
        await ctx.report_progress(0.5, "shouting")
        return {"result": f"Processed: {text.upper()}"}

    @capability
    def explode(self) -> None:
        """Always fail."""
        raise RuntimeError("kaboom from explode")


class NotAWorker:
    """Something `wa worker` must refuse to run."""


_SEEN: set[str] = set()


class FlakyWorker(BaseWorker):
    """`flaky` fails the first time this process sees a text and succeeds after: a retry that works."""

    @capability
    async def flaky(self, text: str) -> str:
        """Fail once per text, then return it."""
        if text not in _SEEN:
            _SEEN.add(text)
            raise RuntimeError(f"first try of {text} fails")
        return text
