"""What every fuzz case is checked against, and where the failures are collected (all of them, deduplicated)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc
from google.protobuf.message import Message

MAX_DETAILS_CHARS = 1000
MAX_METADATA_CHARS = 2000
MAX_TEXT_FIELD_CHARS = 1000
# Bytes a single call may add to a server's log (stderr): more is a log flood (usually an echoed input).
MAX_LOG_BYTES_PER_CALL = 16 * 1024
# Growth of a server's resident memory over one test module (fuzzed registrations are evicted by the TTL).
MAX_RSS_GROWTH_BYTES = 300 * 2**20
# Response fields that carry human-readable text about a failure: they must stay short too.
TEXT_FIELDS = {"message", "details", "error_message", "reason", "state_reason", "fields_json"}


@dataclass
class Finding:
    rpc: str
    kind: str
    outcome: str
    shape: str
    repro: str
    count: int = 1

    def key(self) -> tuple[str, str, str, str]:
        return (self.rpc, self.kind, self.outcome, self.shape)

    def render(self) -> str:
        return f"[{self.rpc}] {self.kind}: {self.outcome} <- {self.shape} (x{self.count})\n    repro: {self.repro}"


@dataclass
class Findings:
    """Failures of many cases, one entry per (rpc, kind, outcome, shape)."""

    items: dict[tuple[str, str, str, str], Finding] = field(default_factory=dict)
    cases: int = 0

    def add(self, finding: Finding) -> None:
        known = self.items.get(finding.key())
        if known is None:
            self.items[finding.key()] = finding
        else:
            known.count += 1

    def for_rpc(self, rpc: str) -> list[Finding]:
        return [f for f in self.items.values() if f.rpc == rpc]

    def seen(self, rpc: str, kind: str, shape: str) -> bool:
        return any(f.rpc == rpc and f.kind == kind and f.shape == shape for f in self.items.values())

    def report(self, only: Iterable[Finding] | None = None) -> str:
        chosen = sorted(self.items.values() if only is None else only, key=lambda f: (f.rpc, f.kind, f.shape))
        return "\n".join(f.render() for f in chosen)


def text_too_long(response: Message) -> list[str]:
    """Names of human-readable text fields in `response` (at any depth) longer than the bound."""
    long: list[str] = []
    for descriptor, value in response.ListFields():
        if descriptor.type == descriptor.TYPE_MESSAGE:
            children = value if descriptor.is_repeated else [value]
            if descriptor.message_type.GetOptions().map_entry:
                continue
            for child in list(children)[:50]:
                long += [f"{descriptor.name}.{name}" for name in text_too_long(child)]
        elif descriptor.name in TEXT_FIELDS and isinstance(value, str) and len(value) > MAX_TEXT_FIELD_CHARS:
            long.append(f"{descriptor.name}({len(value):,} chars)")
    return long


def status_outcome(code: grpc.StatusCode | None, details: str | None) -> str:
    name = "OK" if code is None else code.name
    if details:
        head = details[:120].replace("\n", " ")
        return f"{name} {head!r}{'...' if len(details) > 120 else ''}"
    return name


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))
