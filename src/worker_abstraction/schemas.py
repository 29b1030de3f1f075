"""Capability parameter schemas: checked when a worker registers, evaluated safely when a task is submitted.

A worker's `json_schema` is input from the network, and the orchestrator evaluates it on every task. So a
schema must be JSON, at most `MAX_SCHEMA_BYTES` and `MAX_SCHEMA_DEPTH` deep, a valid JSON Schema (checked
against its meta-schema), and its regular expressions (`pattern`, `patternProperties`) are compiled and
run by RE2, whose time is linear in the input: a pattern such as `^(a+)+$` cannot freeze anyone. Patterns
RE2 cannot run (back-references, look-arounds) are refused at registration.

A schema may refer only within itself (`"$ref": "#/$defs/..."`): a reference to anything else (a URL, a
file, another document) is refused at registration, and validators are built with an empty registry, so
no schema can make the orchestrator fetch anything (a request forgery, and blocking I/O on its loop).
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import jsonschema
import re2
import referencing
from jsonschema.protocols import Validator

from worker_abstraction.codec import short

MAX_SCHEMA_BYTES = 64 * 2**10
MAX_SCHEMA_DEPTH = 32

K = TypeVar("K")
V = TypeVar("V")

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is reported to its sender, not logged by RE2


class _Cache(Generic[K, V]):
    """The most recently used values, bounded by count and by the size of their keys (what a schema's text
    costs to hold, parsed and compiled, grows with it): hostile registrations cannot grow it without bound."""

    def __init__(self, *, max_items: int, max_chars: int) -> None:
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._chars, self._max_items, self._max_chars = 0, max_items, max_chars

    @property
    def size(self) -> tuple[int, int]:
        """(entries, characters of their keys)."""
        return len(self._items), self._chars

    def get(self, key: K, chars: int, make: Callable[[], V]) -> V:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            return found[0]
        value = make()  # (may raise: nothing is kept then)
        if chars > self._max_chars:
            return value  # too large to keep
        self._items[key] = (value, chars)
        self._chars += chars
        while len(self._items) > self._max_items or self._chars > self._max_chars:
            _, (_, dropped) = self._items.popitem(last=False)
            self._chars -= dropped
        return value


# Bounds of what the caches hold: 1,024 schemas (or 4,096 patterns), and at most 4 MiB of schema text each.
CACHE_CHARS = 4 * 2**20


class UnusableSchemaError(ValueError):
    """A schema that cannot be used (not JSON, too large or deep, not a JSON Schema, or an unsafe pattern)."""


def schema_problems(text: str) -> list[str]:
    """Every reason `text` cannot be used as a parameter's JSON Schema (empty: it can; so can "")."""
    try:
        _parse(text)
    except UnusableSchemaError as error:
        return [str(error)]
    return []


def validator(json_type: str, text: str) -> Validator:
    """A validator for one parameter: its declared JSON type, narrowed by its schema (if any).

    Raises:
        UnusableSchemaError: the schema cannot be used (see `schema_problems`).
    """
    return _validator(json_type, text)


def _validator(json_type: str, text: str) -> Validator:
    return _VALIDATORS.get((json_type, text), len(text), lambda: _make_validator(json_type, text))


def _make_validator(json_type: str, text: str) -> Validator:
    schema = _parse(text)
    if schema is True:
        schema = {}
    if isinstance(schema, dict) and json_type not in ("any", "") and "type" not in schema and "anyOf" not in schema:
        schema = {**schema, "type": json_type}
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    # An empty registry: references resolve within the schema or not at all (never by a fetch).
    return _safe(base)(schema, registry=referencing.Registry())  # type: ignore[call-arg]


def _parse(text: str) -> Any:
    return _PARSED.get(text, len(text), lambda: _parse_now(text))


def _parse_now(text: str) -> Any:
    if not text:
        return {}
    if len(text) > MAX_SCHEMA_BYTES:
        raise UnusableSchemaError(
            f"json_schema takes {len(text):,} characters; at most {MAX_SCHEMA_BYTES:,} are allowed"
        )
    try:
        schema = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise UnusableSchemaError(f"json_schema is not JSON ({str(error)[:80]}): {short(text)}") from None
    if not isinstance(schema, dict | bool):
        raise UnusableSchemaError(f"json_schema must be a JSON object (or true/false), got {short(text)}")
    if _depth(schema) > MAX_SCHEMA_DEPTH:
        raise UnusableSchemaError(f"json_schema nests deeper than {MAX_SCHEMA_DEPTH} levels")
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        base.check_schema(schema)  # type: ignore[arg-type]  # true/false are schemas too
    except jsonschema.SchemaError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise UnusableSchemaError(
            f"json_schema is not a valid JSON Schema at {short(where)}: {error.message[:120]}"
        ) from None
    except Exception as error:  # (e.g. a pattern too deeply nested for Python's own compiler)
        raise UnusableSchemaError(f"json_schema cannot be checked: {type(error).__name__}") from None
    for reference in _references(schema):
        if not reference.startswith("#"):
            raise UnusableSchemaError(
                f'json_schema may only refer within itself ("$ref": "#/$defs/..."); {short(reference)} '
                "points elsewhere, and nothing is ever fetched: put what it names under $defs"
            )
    if _uses_both(schema, "patternProperties", "unevaluatedProperties"):
        # jsonschema would match those patterns with Python's backtracking engine: not allowed together.
        raise UnusableSchemaError("json_schema may not combine patternProperties with unevaluatedProperties")
    for pattern in _patterns(schema):
        try:
            re2.compile(pattern, _RE2_OPTIONS)
        except re2.error:
            raise UnusableSchemaError(
                f"json_schema pattern {short(pattern)} cannot run in linear time (RE2 refuses it: no "
                "back-references or look-arounds)"
            ) from None
    return schema


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_SCHEMA_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _objects(schema: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in a schema, at any depth."""
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            yield item
            stack.extend(value for value in item.values() if isinstance(value, dict | list))


def _patterns(schema: Any) -> Iterator[str]:
    """Every regular expression in a schema: `pattern` values and `patternProperties` names."""
    for item in _objects(schema):
        if isinstance(item.get("pattern"), str):
            yield item["pattern"]
        if isinstance(item.get("patternProperties"), dict):
            yield from (key for key in item["patternProperties"] if isinstance(key, str))


_REFERENCE_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


def _references(schema: Any) -> Iterator[str]:
    """Every reference a schema makes (`$ref` and its dynamic kin), as written."""
    for item in _objects(schema):
        for keyword in _REFERENCE_KEYWORDS:
            value = item.get(keyword)
            if value is not None:
                yield value if isinstance(value, str) else repr(value)


def _uses_both(schema: Any, first: str, second: str) -> bool:
    seen = {key for item in _objects(schema) for key in (first, second) if key in item}
    return seen == {first, second}


def _compiled(pattern: str) -> Any:
    return _PATTERNS.get(pattern, len(pattern), lambda: re2.compile(pattern, _RE2_OPTIONS))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    if isinstance(instance, str) and not _compiled(pattern).search(instance):
        yield jsonschema.ValidationError(f"{short(instance)} does not match {short(pattern)}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    if not isinstance(instance, dict):
        return
    for pattern, subschema in patterns.items():
        compiled = _compiled(pattern)
        for key, value in instance.items():
            if compiled.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    if not isinstance(instance, dict):
        return
    properties = schema.get("properties", {})
    patterns = [_compiled(pattern) for pattern in schema.get("patternProperties", {})]
    extras = [key for key in instance if key not in properties and not any(p.search(key) for p in patterns)]
    if isinstance(additional, dict):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        named = ", ".join(short(extra) for extra in extras[:5])
        yield jsonschema.ValidationError(f"additional properties are not allowed ({named} unexpected)")


@functools.cache
def _safe(base: type[Validator]) -> Callable[[Any], Validator]:
    """`base` with its regular expressions run by RE2."""
    extended: Callable[[Any], Validator] = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        base,
        {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
        },
    )
    return extended


_PARSED: _Cache[str, Any] = _Cache(max_items=1024, max_chars=CACHE_CHARS)
_VALIDATORS: _Cache[tuple[str, str], Validator] = _Cache(max_items=1024, max_chars=CACHE_CHARS)
_PATTERNS: _Cache[str, Any] = _Cache(max_items=4096, max_chars=CACHE_CHARS)


def cache_sizes() -> dict[str, tuple[int, int]]:
    """What the caches of parsed schemas, validators and compiled patterns hold now: (entries, characters)."""
    return {"parsed": _PARSED.size, "validators": _VALIDATORS.size, "patterns": _PATTERNS.size}
