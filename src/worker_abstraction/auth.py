"""Who may call what: the roles each method is open to, and the server interceptor that checks them.

A caller proves who it is with a bearer token (`authorization: Bearer TOKEN` metadata), with a credential
signed for this server alone (`authorization: WA-Signed ...`, what callers send to workers: see `signing`),
or, over mTLS, with its client certificate (whose principal is `ROLE/NAME`, as `wa certs init` issues
them). The token file that names principals by their tokens is `principals.TokenFile`.

Roles: `worker` (register, heartbeat and leave with ids it owns), `orchestrator` (read the registry, send
tasks to workers), `client` (submit, watch, cancel and read tasks), `operator` (everything a client may,
plus dead letters, metrics scrapes (`METRICS_ROLES`) and every other call). Health checks and server
reflection need no credentials (`OPEN_SERVICES`). Without an `Authenticator` a server trusts every caller,
as the seed contract's programs expect.

Rate: each call counts once against its principal's token bucket (over it: RESOURCE_EXHAUSTED), and so
does each submission or watch sent on a session stream, which waits for the bucket instead of being
refused: a flood slows its own sender.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc
from grpc import aio

from worker_abstraction import signing
from worker_abstraction._handlers import rewrap
from worker_abstraction.codec import short
from worker_abstraction.errors import PermissionDeniedError, RateLimitedError
from worker_abstraction.principals import (
    InvalidTokenFileError,
    Principal,
    Role,
    TokenFile,
    principal_from_names,
)
from worker_abstraction.ratelimit import DEFAULT_CALLS_PER_SECOND, TokenBucket

__all__ = [  # (the names callers import from here, principals' included)
    "ANYONE",
    "METRICS_ROLES",
    "OPEN_SERVICES",
    "RULES",
    "Authenticator",
    "InvalidTokenFileError",
    "Principal",
    "Role",
    "TokenFile",
    "check_may_call",
    "current_owner",
    "current_principal",
    "pace",
    "principal_from_names",
    "restricted_to",
]

ANYONE = Principal("anyone", frozenset(Role))  # the caller of a server without an Authenticator
_current: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal", default=ANYONE)


def current_principal() -> Principal:
    """The principal of the call being handled (`ANYONE` when the server checks no credentials)."""
    return _current.get()


def check_may_call(capability: str) -> None:
    """Refuse a task for a capability the caller's credentials do not allow.

    Raises:
        PermissionDeniedError: naming the principal and the capability.
    """
    principal = _current.get()
    if not principal.may_use(capability):
        raise PermissionDeniedError(f"{short(principal.name)} may not call capability {short(capability)}")


def current_owner() -> str:
    """The name a task submitted by this call is recorded under ("" when the server checks no credentials)."""
    principal = _current.get()
    return "" if principal is ANYONE else principal.name


def restricted_to() -> str | None:
    """The owner whose tasks alone the caller may see and touch; None when it may see every task (an
    operator, or any caller of a server that checks no credentials)."""
    principal = _current.get()
    return None if principal is ANYONE or Role.OPERATOR in principal.roles else principal.name


async def pace() -> None:
    """Count one more request of the call being handled against its caller's rate, waiting while the caller
    is over it: a stream's messages that each ask for work (a session's submissions) are counted so, and a
    stream over its rate is slowed down rather than refused."""
    bucket = _bucket.get()
    wait = bucket.reserve() if bucket is not None else 0.0
    if wait:
        await asyncio.sleep(wait)  # (pacing, not a synchronisation: the bucket refills at its rate)


# The rate limit of the call being handled (None: the server limits nobody).
_bucket: contextvars.ContextVar[TokenBucket | None] = contextvars.ContextVar("bucket", default=None)


_S = "worker_abstraction.RegistryService/"
_W = "worker_abstraction.WorkerService/"
_O = "worker_abstraction.OrchestratorService/"
_READERS = frozenset({Role.ORCHESTRATOR, Role.CLIENT, Role.OPERATOR})
_CALLERS = frozenset({Role.CLIENT, Role.OPERATOR})
# The roles that may call each method; a method not listed is for operators only (those of OPEN_SERVICES
# excepted).
RULES: Mapping[str, frozenset[Role]] = {
    **{_S + m: frozenset({Role.WORKER}) for m in ("RegisterWorker", "WorkerHeartbeat", "HeartbeatStream")},
    _S + "DeregisterWorker": frozenset({Role.WORKER, Role.OPERATOR}),
    **{_S + m: _READERS for m in ("GetAvailableWorkers", "GetWorkerById", "WatchWorkers")},
    **{
        _W + m: frozenset({Role.ORCHESTRATOR})
        for m in ("ExecuteTask", "OpenTaskChannel", "CancelTask", "StreamTaskStatus", "ProvideInput")
    },
    _W + "GetWorkerInfo": frozenset({Role.ORCHESTRATOR, Role.OPERATOR}),
    **{
        _O + m: _CALLERS
        for m in ("SubmitTask", "OpenSession", "WatchTask", "GetTask", "ListTasks", "CancelTask", "GetQueueStats")
    },
    _O + "ProvideInput": _CALLERS,  # (ApproveTask and DenyTask: operators only)
    _O + "ClaimTask": _CALLERS,
    _O + "ListWorkers": _CALLERS,
    _O + "ListVersionSplits": _CALLERS,  # (SetVersionSplit: operators only)
    **{
        _O + m: _CALLERS
        for m in ("RunWorkflow", "GetWorkflow", "ListWorkflows", "WatchWorkflow", "CancelWorkflow", "RerunWorkflow")
    },
    **{
        _O + m: _CALLERS
        for m in (
            "CreateSchedule",
            "UpdateSchedule",
            "GetSchedule",
            "ListSchedules",
            "PauseSchedule",
            "ResumeSchedule",
            "DeleteSchedule",
            "TriggerSchedule",
        )
    },
}


# Who may scrape a server's metrics endpoint (`--metrics-port`) when it checks credentials.
METRICS_ROLES: frozenset[Role] = frozenset({Role.OPERATOR})


# Services anyone may call without credentials, because load balancers, `grpc_health_probe` and `grpcurl`
# call them bare: health checking and server reflection (see observability/health.py). They tell whether a
# server serves and what its services look like (worker.proto, which is public), and nothing else; their
# calls are not counted against any rate.
OPEN_SERVICES: frozenset[str] = frozenset({"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"})


class Authenticator(aio.ServerInterceptor):  # type: ignore[type-arg]  # generic only in grpc-stubs
    """Checks every call's credentials and role before its handler runs (a server interceptor).

    Args:
        tokens: the token file (None: only client certificates identify callers).
        certificates: accept a verified client certificate's principal (`ROLE/NAME`) as the caller.
    """

    def __init__(
        self,
        tokens: TokenFile | None,
        *,
        certificates: bool = True,
        calls_per_second: float = DEFAULT_CALLS_PER_SECOND,
    ) -> None:
        self._tokens = tokens
        self._certificates = certificates
        self._rate = calls_per_second
        self._buckets: dict[str, TokenBucket] = {}
        self._signed = signing.Verifier(self._public_key)

    @property
    def checks_tokens(self) -> bool:
        """Whether callers may present tokens (a token file is configured), which then cross the network."""
        return self._tokens is not None

    def accept_audience(self, audience: str) -> None:
        """Accept signed credentials made for `audience` (see `signing`): a worker calls it with the address
        it registers, which is what callers dial and sign for. Servers that never do refuse them all."""
        self._signed.audiences.add(audience)

    def _public_key(self, key_id: str) -> bytes | None:
        found = self._tokens.signer(key_id) if self._tokens is not None else None
        return found[0] if found is not None else None

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method.lstrip("/")
        if method.rpartition("/")[0] in OPEN_SERVICES:
            return handler
        allowed = RULES.get(method, frozenset({Role.OPERATOR}))
        short_name = method.rsplit("/", 1)[-1]
        return rewrap(
            handler,
            answer_once=lambda behavior: _unary(behavior, self, short_name, allowed),
            answer_stream=lambda behavior: _stream(behavior, self, short_name, allowed),
        )

    def principal_of_token(self, token: str) -> Principal | None:
        """Whom a bearer token names in the token file (None: unknown, or no token file)."""
        return self._tokens.principal(token.strip()) if self._tokens is not None and token.strip() else None

    def identify(self, context: aio.ServicerContext[Any, Any]) -> Principal | str:
        """The caller, or why it cannot be identified."""
        authorizations = [
            value
            for key, value in context.invocation_metadata() or ()
            if key == "authorization" and isinstance(value, str)
        ]
        return self.principal_of(authorizations, lambda: _certificate_names(context))

    def principal_of(
        self, authorizations: Iterable[str], certificate_names: Callable[[], Iterable[str]]
    ) -> Principal | str:
        """The caller its credentials name, or why they name none: the bearer token of its `authorization`
        values (`Bearer TOKEN`), else (when certificates are accepted) the principal among the names
        (`ROLE/NAME`, subject alternative names and common name) of its verified client certificate.

        Used for gRPC calls and for the HTTP metrics endpoint alike.
        """
        token, scheme = "", ""
        for value in authorizations:
            scheme, _, token = value.partition(" ")
            scheme = scheme.lower()
            if scheme not in ("bearer", "wa-signed") or not token.strip():
                return "the authorization must read 'Bearer TOKEN'"
        if token and scheme == "wa-signed" and (self._tokens is not None or not self._certificates):
            return self._principal_of_signed(token.strip())
        if scheme == "wa-signed":
            token = ""  # no token file to check it with: the client certificate speaks for the caller
        if token:
            return self.principal_of_token(token) or "the token is not known to this server (check --token / WA_TOKEN)"
        if self._certificates:
            principal = principal_from_names(certificate_names())
            if principal is not None:
                return principal
        return (
            "this server requires credentials: a token (--token / WA_TOKEN, sent as 'authorization: Bearer "
            "TOKEN') or a client certificate"
        )

    def _principal_of_signed(self, credential: str) -> Principal | str:
        try:
            key_id = self._signed.key_id(credential)
        except ValueError as refused:
            return str(refused)
        found = self._tokens.signer(key_id) if self._tokens is not None else None
        return found[1] if found is not None else "the signed credential's key is no longer in the token file"

    async def admit(self, context: aio.ServicerContext[Any, Any], method: str, allowed: frozenset[Role]) -> None:
        found = self.identify(context)
        if isinstance(found, str):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, found)
        assert isinstance(found, Principal)
        if not found.roles & allowed:
            have = ", ".join(sorted(found.roles))
            need = " or ".join(sorted(allowed))
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{short(found.name)} ({have}) may not call {method}: it needs {need}",
            )
        bucket = self._bucket(found)
        wait = bucket.take()
        if wait:
            raise RateLimitedError(short(found.name), bucket.rate, wait)
        _current.set(found)
        _bucket.set(bucket)

    def _bucket(self, principal: Principal) -> TokenBucket:
        bucket = self._buckets.get(principal.name)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:  # (principals come from a file or a CA: few)
                self._buckets.clear()
            bucket = self._buckets[principal.name] = TokenBucket(principal.calls_per_second or self._rate)
        return bucket


_MAX_BUCKETS = 100_000


def _certificate_names(context: aio.ServicerContext[Any, Any]) -> list[str]:
    auth = context.auth_context() or {}
    return [
        raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        for key in ("x509_subject_alternative_name", "x509_common_name")
        for raw in auth.get(key, ())
    ]


def _unary(behavior: Any, auth: Authenticator, method: str, allowed: frozenset[Role]) -> Any:
    async def checked(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await auth.admit(context, method, allowed)
        return await behavior(request, context)

    return checked


def _stream(behavior: Any, auth: Authenticator, method: str, allowed: frozenset[Role]) -> Any:
    async def checked(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        await auth.admit(context, method, allowed)
        async for response in behavior(request, context):
            yield response

    return checked
