"""`@capability`: a type-hinted method becomes a tool with a typed, validated parameter list.

The decorator inspects the signature once, at class creation, and stores a frozen `CapabilityDef`: the
public `CapabilitySpec` (what the registry and orchestrators see) plus one pydantic adapter per parameter,
which validates each `value_json` straight from JSON in strict mode (so `"3"` is not an integer).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_args, get_origin, get_type_hints, overload

from worker_abstraction.context import TaskContext
from worker_abstraction.errors import InvalidCapabilityError
from worker_abstraction.types import CapabilitySpec, ParameterSpec

if TYPE_CHECKING:
    # pydantic loads when the first capability is described, not when the package is imported.
    import pydantic

F = TypeVar("F", bound=Callable[..., Any])

_ATTRIBUTE = "__wa_capability__"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Yields|Raises|Example|Examples|Note|Notes):\s*$")


@dataclass(frozen=True, slots=True)
class _Parameter:
    spec: ParameterSpec
    adapter: pydantic.TypeAdapter[Any]


@dataclass(frozen=True, slots=True)
class CapabilityDef:
    """A capability as the worker runs it: its spec, how to validate its arguments, and its handler."""

    spec: CapabilitySpec
    function: Callable[..., Any]
    is_async: bool
    context_parameter: str | None
    parameters: tuple[_Parameter, ...]
    frees_slot_on_input: bool = False  # a question ends the attempt, freeing its slot (see `worker.asking`)
    checks_schemas: bool = False  # the arguments are checked against the parameters' JSON Schemas too

    def parse_arguments(self, values_json: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
        """Decode and type-check JSON arguments; returns (arguments, every problem found)."""
        import pydantic  # loaded already: `describe` made the adapters

        problems: list[str] = []
        arguments: dict[str, Any] = {}
        known = {p.spec.name for p in self.parameters}
        problems.extend(
            f"unknown parameter {key!r} (capability {self.spec.name!r} takes: {_names(known)})"
            for key in values_json
            if key not in known
        )
        for parameter in self.parameters:
            name = parameter.spec.name
            if name not in values_json:
                if parameter.spec.required:
                    problems.append(f"missing required parameter {name!r} ({parameter.spec.type})")
                continue
            raw = values_json[name]
            try:
                arguments[name] = parameter.adapter.validate_json(raw, strict=True)
            except pydantic.ValidationError as error:
                problems.append(_describe(name, parameter.spec.type, raw, error))
        if self.checks_schemas and not problems:
            from worker_abstraction.validation import parameter_problems

            problems = parameter_problems(self.spec, arguments)
        return arguments, problems


def _names(names: set[str]) -> str:
    return ", ".join(sorted(names)) or "no parameters"


def _describe(name: str, type_: str, raw: str, error: pydantic.ValidationError) -> str:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return f"parameter {name!r} is not valid JSON: {raw[:80]!r}"
    where = ".".join(str(p) for p in first["loc"])
    detail = f" at {where}" if where else ""
    return f"parameter {name!r} expects {type_}, got {raw[:80]}{detail}: {first['msg']}"


@overload
def capability(function: F, /) -> F: ...
@overload
def capability(
    *,
    name: str | None = None,
    description: str | None = None,
    max_concurrent_tasks: int = 0,
    required_tags: Sequence[str] = (),
    frees_slot_on_input: bool = False,
    version: str = "",
    deprecated: str = "",
    stateless: bool = False,
) -> Callable[[F], F]: ...


def capability(
    function: F | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    max_concurrent_tasks: int = 0,
    required_tags: Sequence[str] = (),
    frees_slot_on_input: bool = False,
    version: str = "",
    deprecated: str = "",
    stateless: bool = False,
) -> F | Callable[[F], F]:
    """Mark a `BaseWorker` method as a capability; works bare (`@capability`) or called.

    Parameters come from the type hints: a parameter with a default is optional. A parameter annotated
    `TaskContext` receives the task's context and is not part of the schema. Descriptions come from the
    docstring (its `Args:` section for parameters) or from `Annotated[T, "description"]`; constraints from
    the type (`Literal[...]`, `Annotated[int, Field(ge=1, le=10)]`, ...) become the parameter's JSON Schema.

    Args:
        name: the capability's name (default: the method's).
        description: overrides the docstring.
        max_concurrent_tasks: at most this many of its tasks run at once on one worker (0: no own limit).
        required_tags: worker tags it needs (e.g. ("gpu",)); tasks for it only go to workers carrying them.
        frees_slot_on_input: a question (`ctx.request_input`) ends the attempt and frees its slot; once
            answered, the task runs again from the start on any capable worker, and each question already
            answered returns its answer at once. The handler must be deterministic up to each question and
            its side effects before one idempotent (see `worker.asking`).
        version: its semantic version, MAJOR.MINOR.PATCH (default `1.0.0`); callers may ask for a range
            (`summarize@^2`), and workers of several versions serve side by side (see `versions`).
        deprecated: this version is deprecated: say what to use instead (it still runs; orchestrators report
            the tasks sent to it).
        stateless: it keeps no state between tasks: session keys do not bind its tasks to one worker.

    The return annotation, when it has a JSON form (not `Any`, not `None`), is the capability's output
    schema (MCP clients get `structuredContent` by it).

    Raises:
        InvalidCapabilityError: at import time, naming the method, when the signature cannot be described.
    """
    if max_concurrent_tasks < 0:
        raise InvalidCapabilityError(f"max_concurrent_tasks must be >= 0, got {max_concurrent_tasks}")
    _check_version(version, name)

    def mark(fn: F) -> F:
        definition = describe(fn, name=name, description=description)
        spec = replace(
            definition.spec,
            max_concurrent_tasks=max_concurrent_tasks,
            required_tags=tuple(required_tags),
            version=version,
            deprecated=deprecated,
            stateless=stateless,
        )
        setattr(fn, _ATTRIBUTE, replace(definition, spec=spec, frees_slot_on_input=frees_slot_on_input))
        return fn

    return mark(function) if function is not None else mark


def definition_of(member: object) -> CapabilityDef | None:
    """The CapabilityDef a method was marked with, if any."""
    found = getattr(member, _ATTRIBUTE, None)
    return found if isinstance(found, CapabilityDef) else None


def describe(fn: Callable[..., Any], *, name: str | None = None, description: str | None = None) -> CapabilityDef:
    """Build the CapabilityDef of a function (the work behind `@capability`)."""
    import pydantic

    label = getattr(fn, "__qualname__", repr(fn))
    if not inspect.isfunction(fn):
        raise InvalidCapabilityError(f"@capability expects a function, got {fn!r}")
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise InvalidCapabilityError(f"capability {label}: generators are not supported; return a value")
    cap_name = name or fn.__name__
    if not _NAME.match(cap_name):
        raise InvalidCapabilityError(f"capability {label}: invalid name {cap_name!r}")
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception as error:  # NameError for forward references that do not resolve, and kin
        raise InvalidCapabilityError(f"capability {label}: cannot resolve type hints: {error}") from error
    summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")

    context_parameter: str | None = None
    parameters: list[_Parameter] = []
    signature = inspect.signature(fn)
    for index, param in enumerate(signature.parameters.values()):
        if index == 0 and param.name in ("self", "cls"):
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise InvalidCapabilityError(f"capability {label}: *args/**kwargs cannot be described")
        if param.kind is param.POSITIONAL_ONLY:
            raise InvalidCapabilityError(f"capability {label}: parameter {param.name!r} is positional-only")
        if param.name not in hints:
            raise InvalidCapabilityError(f"capability {label}: parameter {param.name!r} has no type hint")
        hint = hints[param.name]
        if hint is TaskContext:
            context_parameter = param.name
            continue
        note = _split_annotated(hint)
        try:
            adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(hint)
            schema = adapter.json_schema()
        except Exception as error:
            raise InvalidCapabilityError(
                f"capability {label}: parameter {param.name!r} has a type without a JSON form: {error}"
            ) from error
        spec = ParameterSpec(
            name=param.name,
            type=_json_type(schema),
            description=note or arg_docs.get(param.name, "") or str(schema.get("description", "")),
            required=param.default is inspect.Parameter.empty,
            json_schema=json.dumps(schema, sort_keys=True) if _constrains_more_than_type(schema) else "",
        )
        parameters.append(_Parameter(spec=spec, adapter=adapter))

    capability_spec = CapabilitySpec(
        name=cap_name,
        description=description if description is not None else summary,
        parameters=tuple(p.spec for p in parameters),
        output_schema=_output_schema(hints.get("return", Any)),
    )
    return CapabilityDef(
        spec=capability_spec,
        function=fn,
        is_async=inspect.iscoroutinefunction(fn),
        context_parameter=context_parameter,
        parameters=tuple(parameters),
    )


def _output_schema(hint: Any) -> str:
    """The JSON Schema of a return annotation, as JSON text ("" when there is none to give)."""
    import pydantic

    if hint is Any or hint is None or hint is type(None) or hint is inspect.Signature.empty:
        return ""
    try:
        return json.dumps(pydantic.TypeAdapter(hint).json_schema(mode="serialization"), sort_keys=True)
    except Exception:  # a type without a JSON form: the output is whatever the handler returns
        return ""


def _check_version(version: str, name: str | None) -> None:
    from worker_abstraction.versions import version_problems

    problems = version_problems(version) if version else []
    if problems:
        raise InvalidCapabilityError(f"capability {name!r}: {problems[0]}" if name else problems[0])


def schema_capability(
    name: str,
    handler: Callable[[dict[str, Any], TaskContext], Awaitable[Any]],
    *,
    input_schema: Mapping[str, Any] | None = None,
    output_schema: Mapping[str, Any] | None = None,
    description: str = "",
    version: str = "",
    deprecated: str = "",
    stateless: bool = False,
    max_concurrent_tasks: int = 0,
    required_tags: Sequence[str] = (),
) -> CapabilityDef:
    """A capability described by JSON Schemas instead of type hints, for tools found at run time (an MCP
    server's, an A2A agent's): serve it with `BaseWorker.set_capabilities`.

    Args:
        name: the capability's name.
        handler: `async def handler(arguments, ctx)`: the task's arguments, decoded and checked against
            `input_schema`, and its context; returns the output.
        input_schema: an object schema; each of its `properties` is a parameter (with its schema), those in
            `required` required (None: no parameters).
        output_schema: the JSON Schema of the output (None: not declared).
        description, version, deprecated, stateless, max_concurrent_tasks, required_tags: as for `capability`.

    Raises:
        InvalidCapabilityError: a bad name or version, or an input schema that is not an object's.
    """
    import pydantic

    if not _NAME.match(name):
        raise InvalidCapabilityError(f"capability name {name!r} must match {_NAME.pattern}")
    _check_version(version, name)
    schema = dict(input_schema or {})
    properties = schema.get("properties") or {}
    if schema.get("type", "object") != "object" or not isinstance(properties, Mapping):
        raise InvalidCapabilityError(f"capability {name!r}: the input schema must describe an object")
    required = set(schema.get("required") or ())
    any_json: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(Any)
    parameters = tuple(
        _Parameter(
            spec=ParameterSpec(
                name=str(key),
                type=_json_type(value) if isinstance(value, Mapping) else "any",
                description=str(value.get("description", "")) if isinstance(value, Mapping) else "",
                required=key in required,
                json_schema=json.dumps(value, sort_keys=True) if isinstance(value, Mapping) else "",
            ),
            adapter=any_json,
        )
        for key, value in properties.items()
    )
    spec = CapabilitySpec(
        name=name,
        description=description,
        parameters=tuple(p.spec for p in parameters),
        max_concurrent_tasks=max_concurrent_tasks,
        required_tags=tuple(required_tags),
        version=version,
        output_schema=json.dumps(dict(output_schema), sort_keys=True) if output_schema else "",
        deprecated=deprecated,
        stateless=stateless,
    )

    async def call(owner: object, **arguments: Any) -> Any:
        context = arguments.pop(_CONTEXT)
        return await handler(arguments, context)

    return CapabilityDef(
        spec=spec,
        function=call,
        is_async=True,
        context_parameter=_CONTEXT,
        parameters=parameters,
        checks_schemas=True,
    )


_CONTEXT = " context"  # (no parameter can be called so: a name of a schema capability's handler's context)


def _split_annotated(hint: Any) -> str:
    """The description carried by `Annotated[T, "text"]` or `Annotated[T, Field(description=...)]`."""
    if get_origin(hint) is not Annotated:
        return ""
    from pydantic.fields import FieldInfo

    for extra in get_args(hint)[1:]:
        if isinstance(extra, str):
            return extra
        if isinstance(extra, FieldInfo) and extra.description:
            return extra.description
    return ""


def _constrains_more_than_type(schema: Mapping[str, Any]) -> bool:
    return bool(set(schema) - {"type", "title", "description"})


def _json_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    options = [s for s in schema.get("anyOf", ()) if s.get("type") != "null"]
    if len(options) == 1:
        return _json_type(options[0])
    return "any"


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and its `Args:` entries."""
    description: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        header = _SECTION.match(line)
        if header:
            section, current = header.group(1), None
            continue
        if section is None:
            description.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            entry = re.match(r"^\s*(\w+)\s*(\([^)]*\))?:\s*(.*)$", line)
            if entry and not line.startswith("        "):
                current = entry.group(1)
                args[current] = entry.group(3).strip()
            elif current and line.strip():
                args[current] = f"{args[current]} {line.strip()}".strip()
    return "\n".join(description).strip(), args
