"""The partition leases' arithmetic and their keys' values: which partition a task id hashes to, which
member wins a partition (rendezvous hashing), and how member and owner keys are named and written.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@functools.lru_cache(maxsize=8192)  # (asked several times over a task's life)
def partition_of(task_id: str, partitions: int) -> int:
    """The partition of `task_id`: the first 8 bytes of its BLAKE2b digest, modulo `partitions` (the same in
    every process, whatever its hash seed)."""
    digest = hashlib.blake2b(task_id.encode(errors="surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def preferred_owner(partition: int, members: Iterable[str]) -> str | None:
    """The member that wins `partition` by rendezvous (highest random weight) hashing; None without members."""
    return max(members, key=lambda member: (weight(partition, member), member), default=None)


def assign(partitions: int, members: Iterable[str]) -> dict[str, set[int]]:
    """Each member's share of the partitions. Adding a member moves only partitions it wins."""
    names = sorted(set(members))
    shares: dict[str, set[int]] = {name: set() for name in names}
    for partition in range(partitions):
        winner = preferred_owner(partition, names)
        if winner is not None:
            shares[winner].add(partition)
    return shares


def weight(partition: int, member: str) -> int:
    text = f"{partition}\x00{member}".encode(errors="surrogatepass")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class Owner:
    holder: str  # "" when released (or deleted)
    incarnation: str
    epoch: int
    revision: int


def encode_name(name: str) -> str:
    # KV keys allow [-/_=.a-zA-Z0-9]; replica names may hold anything, so they are base64url-encoded.
    return base64.urlsafe_b64encode(name.encode(errors="surrogatepass")).decode().rstrip("=")


def decode_name(token: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError:
        return None


def partition_number(text: str, partitions: int) -> int | None:
    return int(text) if text.isdigit() and int(text) < partitions else None


def dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def loads(value: bytes) -> dict[str, Any]:
    try:
        loaded = json.loads(value)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def member_incarnation(value: bytes, name: str) -> str | None:
    loaded = loads(value)
    incarnation = loaded.get("incarnation")
    return incarnation if loaded.get("replica") == name and isinstance(incarnation, str) and incarnation else None


def owner_value(holder: str, incarnation: str, epoch: int) -> bytes:
    return dump({"holder": holder, "incarnation": incarnation, "epoch": epoch})


def owner_of(value: bytes, revision: int) -> Owner | None:
    loaded = loads(value)
    holder, incarnation, epoch = loaded.get("holder"), loaded.get("incarnation"), loaded.get("epoch")
    if not isinstance(holder, str) or not isinstance(incarnation, str) or type(epoch) is not int:
        return None
    return Owner(holder, incarnation, epoch, revision)
