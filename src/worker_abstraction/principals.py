"""Who callers are: principals with their roles, and the token file that names them by token digest.

The token file is TOML, read again when it changes (without a restart). Only digests of tokens are kept,
and a presented token is looked up by its digest, so no comparison leaks a token's bytes through its
timing. An entry may also give the public key its principal's signed credentials are checked with (see
`signing`), which a plain `token` entry derives:

    [[principal]]
    name = "worker/ocr-1"
    roles = ["worker"]
    token = "..."                 # or token_sha256 = "<hex digest>" and public_key = "<hex>" (wa token new)
    capabilities = ["ocr*"]       # optional: capabilities it may offer (worker) or call (client)
    calls_per_second = 50         # optional: its rate limit (default 2,000 a second)
"""

from __future__ import annotations

import contextlib
import enum
import fnmatch
import hashlib
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker_abstraction import signing


class Role(enum.StrEnum):
    WORKER = "worker"
    ORCHESTRATOR = "orchestrator"
    CLIENT = "client"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its name, roles and (if limited) the capabilities it may offer or call."""

    name: str
    roles: frozenset[Role]
    capabilities: tuple[str, ...] = ()  # shell-style patterns; empty: any capability
    calls_per_second: float = 0.0  # its rate limit (0: the server's default)

    def may_use(self, capability: str) -> bool:
        return not self.capabilities or any(fnmatch.fnmatchcase(capability, p) for p in self.capabilities)


class InvalidTokenFileError(ValueError):
    """The token file cannot be read or breaks its format (every problem listed)."""


@dataclass(slots=True)
class TokenFile:
    """Principals by token digest, read from a TOML file and read again when the file changes."""

    path: Path
    check_every_seconds: float = 1.0
    _by_digest: dict[bytes, Principal] = field(default_factory=dict)
    _by_key_id: dict[str, tuple[bytes, Principal]] = field(default_factory=dict)
    _stamp: tuple[int, int] = (0, 0)
    _checked: float = 0.0

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.reload()

    def reload(self) -> None:
        """Read the file now.

        Raises:
            InvalidTokenFileError: it cannot be read or breaks the format (the principals in use are kept).
        """
        try:
            stat = self.path.stat()
            document = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise InvalidTokenFileError(f"token file {self.path}: {error}") from None
        self._by_digest, self._by_key_id = _principals(document, str(self.path))
        self._stamp = (stat.st_mtime_ns, stat.st_size)

    def principal(self, token: str) -> Principal | None:
        now = time.monotonic()
        if now - self._checked >= self.check_every_seconds:
            self._checked = now
            self._reload_if_changed()
        return self._by_digest.get(hashlib.sha256(token.encode()).digest())

    def signer(self, key_id: str) -> tuple[bytes, Principal] | None:
        """The public key and principal of a signing key's id (see `signing`), None when unknown."""
        self.principal("")  # (reads the file again if it changed)
        return self._by_key_id.get(key_id)

    def _reload_if_changed(self) -> None:
        try:
            stat = self.path.stat()
        except OSError:
            return  # gone for a moment (an editor replacing it): keep what we have
        if (stat.st_mtime_ns, stat.st_size) != self._stamp:
            with contextlib.suppress(InvalidTokenFileError):  # half-written: the principals in use stay
                self.reload()


def _principals(
    document: dict[str, Any], where: str
) -> tuple[dict[bytes, Principal], dict[str, tuple[bytes, Principal]]]:
    found: dict[bytes, Principal] = {}
    signers: dict[str, tuple[bytes, Principal]] = {}
    problems: list[str] = []
    entries = document.get("principal", [])
    if not isinstance(entries, list):
        raise InvalidTokenFileError(f"token file {where}: [[principal]] entries expected")
    known_roles = {r.value for r in Role}
    for index, entry in enumerate(entries):
        at = f"principal[{index}]"
        name, roles = entry.get("name"), entry.get("roles", [])
        if not isinstance(name, str) or not name:
            problems.append(f"{at}: name is missing")
            continue
        if not isinstance(roles, list) or not roles or not set(roles) <= known_roles:
            problems.append(f"{at} ({name}): roles must be a non-empty list of {sorted(known_roles)}")
            continue
        token, digest, public = entry.get("token"), entry.get("token_sha256"), entry.get("public_key")
        if public is not None and not (isinstance(public, str) and _is_hex(public, 64)):
            problems.append(f"{at} ({name}): public_key must be 64 hex digits (`wa token new` prints it)")
            continue
        if isinstance(token, str) and len(token) >= 16:
            key = hashlib.sha256(token.encode()).digest()
            public = public or signing.public_key(token).hex()
        elif isinstance(digest, str) and len(digest) == 64:
            try:
                key = bytes.fromhex(digest)
            except ValueError:
                problems.append(f"{at} ({name}): token_sha256 is not hex")
                continue
        else:
            problems.append(f"{at} ({name}): give token (16 characters or more) or token_sha256 (hex)")
            continue
        rate = entry.get("calls_per_second", 0)
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1e6:
            problems.append(f"{at} ({name}): calls_per_second must be a number in 0..1000000 (0: the default)")
            continue
        capabilities = entry.get("capabilities", [])
        if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
            problems.append(f"{at} ({name}): capabilities must be a list of patterns")
            continue
        if key in found:
            problems.append(f"{at} ({name}): the same token as {found[key].name}")
            continue
        found[key] = Principal(name, frozenset(Role(r) for r in roles), tuple(capabilities), float(rate))
        if public:
            raw = bytes.fromhex(public)
            signers[signing.key_id(raw)] = (raw, found[key])
    if problems:
        raise InvalidTokenFileError(f"token file {where}: " + "; ".join(problems))
    return found, signers


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdefABCDEF" for c in text)


def principal_from_names(names: Iterable[str]) -> Principal | None:
    """The principal a verified client certificate names (`ROLE/NAME` or `wa://ROLE/NAME`, as `wa certs
    init` issues them), or None when no name is one."""
    for text in names:
        text = text.removeprefix("wa://")
        role, slash, _ = text.partition("/")
        if slash and role in Role.__members__.values():
            return Principal(text, frozenset({Role(role)}))
    return None
