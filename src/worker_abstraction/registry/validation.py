"""What makes a registration acceptable; every problem is reported, not only the first."""

from __future__ import annotations

from worker_abstraction.types import PARAMETER_TYPES, WorkerInfo

_TYPES = ", ".join(t for t, canonical in PARAMETER_TYPES.items() if t == canonical)


def registration_problems(info: WorkerInfo) -> list[str]:
    problems: list[str] = []
    if not info.name.strip():
        problems.append("worker_info.name is empty; give the worker a name")
    problems.extend(_address_problems(info.address))
    seen: set[str] = set()
    for index, cap in enumerate(info.capabilities):
        where = f"capabilities[{index}]"
        if not cap.name.strip():
            problems.append(f"{where}.name is empty")
        elif cap.name in seen:
            problems.append(f"duplicate capability name {cap.name!r}; capability names must be unique")
        seen.add(cap.name)
        parameter_names: set[str] = set()
        for p_index, parameter in enumerate(cap.parameters):
            p_where = f"capability {cap.name or where!r} parameters[{p_index}]"
            if not parameter.name.strip():
                problems.append(f"{p_where}.name is empty")
            elif parameter.name in parameter_names:
                problems.append(f"{p_where}: duplicate parameter name {parameter.name!r}")
            parameter_names.add(parameter.name)
            if parameter.type.lower() not in PARAMETER_TYPES:
                problems.append(f"{p_where} ({parameter.name!r}): unknown type {parameter.type!r}; use one of {_TYPES}")
    return problems


def _address_problems(address: str) -> list[str]:
    if not address.strip():
        return ["worker_info.address is empty; give the host:port of the worker's WorkerService"]
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return [f"worker_info.address {address!r} is not host:port with a port in 1..65535"]
    return []
