"""Channel targets: one address, or several (replicas) that one gRPC channel fails over between."""

from __future__ import annotations

import socket
from typing import Any

from worker_abstraction.codec import ascii_decimal


def failover_target(address: str) -> tuple[str, list[tuple[str, Any]]]:
    """The gRPC target of `address`, and the channel options it needs.

    One `host:port` is its own target. A comma-separated list (`10.0.0.1:50051,10.0.0.2:50051`, e.g. registry
    replicas) becomes one `ipv4:`/`ipv6:` target over all their addresses, host names resolved once here,
    with gRPC's pick_first policy: the channel uses the first address that answers and moves to the next
    by itself when that one goes away (the call in flight fails UNAVAILABLE; the next one reconnects). The
    first entry's host:port stays the authority, so TLS checks the certificate against the name given.

    Raises:
        ValueError: an entry is not host:port, a host does not resolve, or IPv4 and IPv6 are mixed.
    """
    parts = [part.strip() for part in address.split(",") if part.strip()]
    if len(parts) <= 1:
        return (parts[0] if parts else address), []
    resolved: list[tuple[int, str]] = []
    for part in parts:
        host, _, port = part.rpartition(":")
        host = host.strip("[]")
        if not host or ascii_decimal(port, max_digits=5) is None:
            raise ValueError(f"{part!r} in {address!r} is not host:port")
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            raise ValueError(f"cannot resolve {host!r} of {address!r}: {error}") from error
        for family, _type, _proto, _name, sockaddr in infos:
            entry = (family, f"[{sockaddr[0]}]:{port}" if family == socket.AF_INET6 else f"{sockaddr[0]}:{port}")
            if entry not in resolved:
                resolved.append(entry)
    families = {family for family, _ in resolved}
    if len(families) != 1:  # gRPC's address targets are all IPv4 or all IPv6; prefer IPv4 where both exist
        resolved = [entry for entry in resolved if entry[0] == socket.AF_INET]
    if not resolved:
        raise ValueError(f"{address!r} mixes IPv6-only and IPv4-only hosts; list one family")
    scheme = "ipv6" if resolved[0][0] == socket.AF_INET6 else "ipv4"
    target = f"{scheme}:" + ",".join(addr for _, addr in resolved)
    return target, [("grpc.default_authority", parts[0]), ("grpc.lb_policy_name", "pick_first")]
