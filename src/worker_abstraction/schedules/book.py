"""Where schedules are kept: `ScheduleBook`, the seam each task home fills (memory, SQLite, NATS).

A schedule is two JSON documents: its definition (what callers set: created, updated, paused, resumed,
removed) and its state (what the orchestrators write as they fire it). They are written apart, so an
orchestrator noting a firing never undoes a caller's change made meanwhile on another one.
"""

from __future__ import annotations

from typing import Any, Protocol

from worker_abstraction.errors import ScheduleExistsError, ScheduleNotFoundError

Document = dict[str, Any]


class ScheduleBook(Protocol):
    @property
    def shared(self) -> bool:
        """Whether other orchestrators change it too (then each reads it again now and then)."""
        ...

    async def load(self) -> list[tuple[Document, Document]]:
        """Every schedule: (definition, state)."""
        ...

    async def get(self, name: str) -> tuple[Document, Document] | None: ...

    async def create(self, name: str, definition: Document, state: Document) -> None:
        """Raises ScheduleExistsError if the name is taken (of two creating it at once, one wins)."""
        ...

    async def put_definition(self, name: str, definition: Document) -> None:
        """Raises ScheduleNotFoundError if there is no such schedule."""
        ...

    async def put_state(self, name: str, state: Document) -> None:
        """Write a schedule's state (nothing, if it was removed meanwhile)."""
        ...

    async def remove(self, name: str) -> bool:
        """False if there was no such schedule."""
        ...

    async def aclose(self) -> None: ...


class MemoryBook:
    """Schedules of an orchestrator that keeps nothing across restarts."""

    shared = False

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Document, Document]] = {}

    async def load(self) -> list[tuple[Document, Document]]:
        return list(self._entries.values())

    async def get(self, name: str) -> tuple[Document, Document] | None:
        return self._entries.get(name)

    async def create(self, name: str, definition: Document, state: Document) -> None:
        if name in self._entries:
            raise ScheduleExistsError(name)
        self._entries[name] = (definition, state)

    async def put_definition(self, name: str, definition: Document) -> None:
        if name not in self._entries:
            raise ScheduleNotFoundError(name)
        self._entries[name] = (definition, self._entries[name][1])

    async def put_state(self, name: str, state: Document) -> None:
        if name in self._entries:
            self._entries[name] = (self._entries[name][0], state)

    async def remove(self, name: str) -> bool:
        return self._entries.pop(name, None) is not None

    async def aclose(self) -> None:
        pass
