"""What makes a registration acceptable; every problem is reported, not only the first.

A registration is input from the network that every reader of the registry receives again, so it is
bounded: in bytes (`MAX_REGISTRATION_BYTES`, well under the 4 MiB a seed-built reader accepts), in the
number and length of its names, and its parameter schemas must be usable (see `schemas`).
"""

from __future__ import annotations

from worker_abstraction import schemas, versions
from worker_abstraction.codec import ascii_decimal, json_problem, short
from worker_abstraction.options import MAX_ID_LENGTH
from worker_abstraction.types import PARAMETER_TYPES, CapabilitySpec, WorkerInfo

_TYPES = ", ".join(t for t, canonical in PARAMETER_TYPES.items() if t == canonical)

MAX_REGISTRATION_BYTES = 2**20
MAX_NAME_LENGTH = 256  # names, addresses, versions, tags
MAX_DESCRIPTION_LENGTH = 8192
MAX_CAPABILITIES = 512
MAX_PARAMETERS = 128  # per capability
MAX_TAGS = 64
MAX_PROBLEMS = 50  # listed in one refusal


def registration_problems(info: WorkerInfo) -> list[str]:
    problems: list[str] = []
    if not info.name.strip():
        problems.append("worker_info.name is empty; give the worker a name")
    problems += _text("worker_info.worker_id", info.worker_id, MAX_ID_LENGTH)
    problems += _text("worker_info.name", info.name, MAX_NAME_LENGTH)
    problems += _text("worker_info.version", info.version, MAX_NAME_LENGTH)
    problems.extend(_address_problems(info.address))
    problems += _tags("worker_info.tags", info.tags)
    if info.max_concurrent_tasks < 0:
        problems.append(f"worker_info.max_concurrent_tasks must be >= 0 (0: no limit), got {info.max_concurrent_tasks}")
    if len(info.capabilities) > MAX_CAPABILITIES:
        problems.append(f"a worker may offer at most {MAX_CAPABILITIES} capabilities, got {len(info.capabilities)}")
    seen: set[str] = set()
    for index, cap in enumerate(info.capabilities[:MAX_CAPABILITIES]):
        where = f"capabilities[{index}]"
        if not cap.name.strip():
            problems.append(f"{where}.name is empty")
        elif cap.name in seen:
            problems.append(f"duplicate capability name {short(cap.name)}; capability names must be unique")
        seen.add(cap.name)
        problems += _capability_problems(cap, where)
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems[:MAX_PROBLEMS]


def _capability_problems(cap: CapabilitySpec, where: str) -> list[str]:
    problems = _text(f"{where}.name", cap.name, MAX_NAME_LENGTH)
    problems += _text(f"{where}.description", cap.description, MAX_DESCRIPTION_LENGTH, printable=False)
    problems += _tags(f"{where}.required_tags", cap.required_tags)
    if cap.max_concurrent_tasks < 0:
        problems.append(f"{where}.max_concurrent_tasks must be >= 0 (0: no limit), got {cap.max_concurrent_tasks}")
    if cap.version:
        problems += [f"{where}.{problem}" for problem in versions.version_problems(cap.version)]
    problems += _text(f"{where}.deprecated", cap.deprecated, MAX_DESCRIPTION_LENGTH, printable=False)
    problems += [f"{where}.output_schema_json: {problem}" for problem in _schema_problems(cap.output_schema)]
    if len(cap.parameters) > MAX_PARAMETERS:
        problems.append(f"{where} may take at most {MAX_PARAMETERS} parameters, got {len(cap.parameters)}")
    parameter_names: set[str] = set()
    for p_index, parameter in enumerate(cap.parameters[:MAX_PARAMETERS]):
        p_where = f"capability {short(cap.name) if cap.name else where} parameters[{p_index}]"
        if not parameter.name.strip():
            problems.append(f"{p_where}.name is empty")
        elif parameter.name in parameter_names:
            problems.append(f"{p_where}: duplicate parameter name {short(parameter.name)}")
        parameter_names.add(parameter.name)
        problems += _text(f"{p_where}.name", parameter.name, MAX_NAME_LENGTH)
        problems += _text(f"{p_where}.description", parameter.description, MAX_DESCRIPTION_LENGTH, printable=False)
        if parameter.type.lower() not in PARAMETER_TYPES:
            problems.append(
                f"{p_where} ({short(parameter.name)}): unknown type {short(parameter.type)}; use one of {_TYPES}"
            )
        problems += [
            f"{p_where} ({short(parameter.name)}): {problem}" for problem in _schema_problems(parameter.json_schema)
        ]
    return problems


def _schema_problems(text: str) -> list[str]:
    found = schemas.schema_problems(text)
    if not found and text:
        # Python's JSON reader takes NaN, Infinity and lone surrogate escapes, which no other reader does:
        # a schema every orchestrator and tool can read is strict JSON.
        strict = json_problem(text)
        if strict is not None:
            found = [f"json_schema {strict}"]
    return found


def _text(field: str, value: str, limit: int, *, printable: bool = True) -> list[str]:
    if len(value) > limit:
        return [f"{field} may be at most {limit} characters, got {len(value):,}: {short(value)}"]
    if printable and not value.isprintable():
        return [f"{field} must be printable text, got {short(value)}"]
    return []


def _tags(field: str, tags: tuple[str, ...]) -> list[str]:
    if len(tags) > MAX_TAGS:
        return [f"{field} may hold at most {MAX_TAGS} tags, got {len(tags)}"]
    problems = []
    for tag in tags:
        if not tag:
            problems.append(f"{field} holds an empty tag")
        problems += _text(field, tag, MAX_NAME_LENGTH)
    return problems


def _address_problems(address: str) -> list[str]:
    if not address.strip():
        return ["worker_info.address is empty; give the host:port of the worker's WorkerService"]
    if len(address) > MAX_NAME_LENGTH or not address.isprintable():
        return [
            f"worker_info.address must be a printable host:port of at most {MAX_NAME_LENGTH} characters, "
            f"got {short(address)}"
        ]
    host, sep, port = address.rpartition(":")
    number = ascii_decimal(port, max_digits=5)
    if not sep or not host or number is None or not 0 < number < 65536:
        return [f"worker_info.address {short(address)} is not host:port with a port in 1..65535"]
    return []
