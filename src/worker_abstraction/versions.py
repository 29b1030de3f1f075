"""Capability versions: semantic versions, and the ranges callers ask for.

A capability carries a version, MAJOR.MINOR.PATCH with an optional pre-release (`2.1.0`, `3.0.0-rc.1`;
empty: `1.0.0`, so workers that say nothing keep working). A caller asks for a range; `summarize@^2` is
capability `summarize` at a version the range `^2` allows. Ranges read as in npm and Cargo:

    (empty), *, x     any version
    2.1.0, =2.1.0     exactly that one
    2, 2.x, 2.1.x     any of that major (minor): >=2.0.0 <3.0.0, >=2.1.0 <2.2.0
    ^2.1              the same major (for 0.x, the same minor): >=2.1.0 <3.0.0
    ~2.1.3, ~2        the same minor (for a bare major, the same major): >=2.1.3 <2.2.0
    >=1.2 <3, >1, <=2 comparators, all of them must hold
    ^1 || ^3          either range

Pre-releases order before their release (`2.0.0-rc.1 < 2.0.0`) and fall in a range like any version.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from worker_abstraction.codec import short

DEFAULT_VERSION = "1.0.0"
MAX_RANGE_LENGTH = 200

_VERSION = re.compile(
    r"^v?(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_PARTIAL = re.compile(r"^v?(\d{1,9}|[xX*])(?:\.(\d{1,9}|[xX*]))?(?:\.(\d{1,9}|[xX*]))?(?:-([0-9A-Za-z.-]+))?$")
_COMPARATOR = re.compile(r"^(\^|~|>=|<=|>|<|=)?\s*(.+)$")


class VersionError(ValueError):
    """A version or a range that does not parse (the message says what is expected)."""


@functools.total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    """A semantic version."""

    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        """The version `text` says (empty: `DEFAULT_VERSION`).

        Raises:
            VersionError: not MAJOR.MINOR.PATCH[-PRE][+BUILD].
        """
        return _version(text.strip() or DEFAULT_VERSION)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        return f"{text}-{'.'.join(str(p) for p in self.pre)}" if self.pre else text

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # A release sorts after its pre-releases; numeric identifiers before alphanumeric ones.
        return (
            self.major,
            self.minor,
            self.patch,
            0 if self.pre else 1,
            tuple((0, p) if isinstance(p, int) else (1, p) for p in self.pre),
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()


@functools.lru_cache(maxsize=1024)
def _version(text: str) -> Version:
    match = _VERSION.match(text)
    if match is None:
        raise VersionError(f"version {short(text)} is not MAJOR.MINOR.PATCH (e.g. 2.1.0, 3.0.0-rc.1)")
    major, minor, patch, pre = match.groups()
    return Version(int(major), int(minor), int(patch), _pre(pre))


def _pre(text: str | None) -> tuple[int | str, ...]:
    if not text:
        return ()
    return tuple(int(part) if part.isdigit() else part for part in text.split("."))


_Bound = tuple[Version, bool]  # (version, inclusive)


@dataclass(frozen=True, slots=True)
class _Interval:
    low: _Bound | None
    high: _Bound | None

    def holds(self, version: Version) -> bool:
        if self.low is not None and (version < self.low[0] or (version == self.low[0] and not self.low[1])):
            return False
        return self.high is None or version < self.high[0] or (version == self.high[0] and self.high[1])


@dataclass(frozen=True, slots=True)
class VersionRange:
    """The versions a caller accepts (see the module's docstring)."""

    text: str
    alternatives: tuple[tuple[_Interval, ...], ...]

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """The range `text` says (empty: any version).

        Raises:
            VersionError: it does not parse, or is longer than `MAX_RANGE_LENGTH`.
        """
        return _range(text.strip())

    @property
    def is_any(self) -> bool:
        return not self.text

    def allows(self, version: Version | str) -> bool:
        """Whether `version` (a Version, or its text: empty is `DEFAULT_VERSION`) is in the range."""
        if not self.alternatives:
            return True
        if isinstance(version, str):
            try:
                version = Version.parse(version)
            except VersionError:
                return False
        return any(all(i.holds(version) for i in intervals) for intervals in self.alternatives)

    def __str__(self) -> str:
        return self.text or "*"


ANY = VersionRange("", ())


@functools.lru_cache(maxsize=1024)
def _range(text: str) -> VersionRange:
    if len(text) > MAX_RANGE_LENGTH:
        raise VersionError(f"a version range has at most {MAX_RANGE_LENGTH} characters, got {len(text)}")
    if text in ("", "*", "x", "X"):
        return ANY
    alternatives = []
    for part in text.split("||"):
        words = _joined(part.split())
        if not words:
            raise VersionError(f"version range {short(text)}: an empty alternative around '||'")
        alternatives.append(tuple(_comparator(word, text) for word in words))
    return VersionRange(text, tuple(alternatives))


def _joined(words: list[str]) -> list[str]:
    """`>= 1.2` written with a space is one comparator."""
    joined: list[str] = []
    for word in words:
        if joined and joined[-1] in ("^", "~", ">=", "<=", ">", "<", "="):
            joined[-1] += word
        else:
            joined.append(word)
    return joined


def _comparator(word: str, whole: str) -> _Interval:
    match = _COMPARATOR.match(word)
    if match is None:
        raise VersionError(_expected(whole))
    operator, rest = match.group(1) or "", match.group(2)
    partial = _PARTIAL.match(rest)
    if partial is None:
        raise VersionError(_expected(whole))
    numbers = [None if p is None or p in "xX*" else int(p) for p in partial.groups()[:3]]
    given = 0
    while given < 3 and numbers[given] is not None:
        given += 1
    if any(n is not None for n in numbers[given:]):
        raise VersionError(f"version range {short(whole)}: a wildcard may only end a version ({short(word)})")
    major, minor, patch = (n or 0 for n in numbers)
    low = Version(major, minor, patch, _pre(partial.group(4)) if given == 3 else ())
    if given == 0:
        return _Interval(None, None)
    if operator in ("", "="):
        if given == 3:
            return _Interval((low, True), (low, True))
        return _Interval((low, True), (_next(low, given - 1), False))
    if operator == "^":
        position = 0 if major > 0 or given == 1 else (1 if minor > 0 or given == 2 else 2)
        return _Interval((low, True), (_next(low, position), False))
    if operator == "~":
        return _Interval((low, True), (_next(low, 0 if given == 1 else 1), False))
    if operator == ">=":
        return _Interval((low, True), None)
    if operator == ">":
        return _Interval((_next(low, given - 1), True), None) if given < 3 else _Interval((low, False), None)
    if operator == "<":
        return _Interval(None, (low, False))
    return _Interval(None, (_next(low, given - 1), False) if given < 3 else (low, True))  # "<="


def _next(version: Version, position: int) -> Version:
    """The first version past `version` at `position` (0: major, 1: minor, 2: patch)."""
    if position == 0:
        return Version(version.major + 1, 0, 0)
    if position == 1:
        return Version(version.major, version.minor + 1, 0)
    return Version(version.major, version.minor, version.patch + 1)


def _expected(whole: str) -> str:
    return f"version range {short(whole)} does not parse (e.g. ^2, ~1.4, >=1.2 <3, 2.1.0, ^1 || ^3)"


def split_capability(name: str) -> tuple[str, str]:
    """`summarize@^2` -> (`summarize`, `^2`); a name without `@` -> (name, "")."""
    capability, _, wanted = name.partition("@")
    return capability, wanted.strip()


def version_problems(text: str) -> list[str]:
    """Why `text` is no capability version (empty: it is one, or empty)."""
    try:
        Version.parse(text)
    except VersionError as error:
        return [str(error)]
    return []


def range_problems(text: str) -> list[str]:
    """Why `text` is no version range (empty: it is one)."""
    try:
        VersionRange.parse(text)
    except VersionError as error:
        return [str(error)]
    return []


def preference(version: str, deprecated: str) -> tuple[bool, Version]:
    """How a capability's versions rank when one description of it is shown (an MCP tool, an A2A skill): the
    newest version that is not deprecated first (sort descending); one that does not parse ranks last."""
    try:
        parsed = Version.parse(version)
    except VersionError:
        parsed = Version(0, 0, 0, ("invalid",))
    return (not deprecated, parsed)
