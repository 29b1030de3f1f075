"""Who may call the A2A routes: with credentials on, a client or an operator, by bearer token.

A2A callers are programs: they send `Authorization: Bearer TOKEN` (a token of the daemon's token file, as
our own RPCs take it; the card declares this scheme). The dashboard's sign-in cookie is not accepted here,
because the A2A routes take POSTs without the dashboard's `X-WA-Dashboard` header, and a cookie would let
another site's page post in a signed-in visitor's name. As on our RPCs, a client sees and touches only the
tasks it submitted and an operator every task; without credentials everyone may do everything.

`A2AGate` wraps the A2A routes (an ASGI app) and puts the admitted `Caller` in the request's scope;
`CallerContextBuilder` hands it to the request handler in the SDK's `ServerCallContext`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.routes import DefaultServerCallContextBuilder
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from worker_abstraction.auth import Authenticator, Principal, Role
from worker_abstraction.codec import short
from worker_abstraction.errors import PermissionDeniedError
from worker_abstraction.types import TaskRecord

SCOPE_KEY = "wa.a2a.caller"
BASE_URL_KEY = "wa.a2a.base_url"
MAX_TOKEN = 4096  # characters; a longer "token" is refused unread
_CALLERS = frozenset({Role.CLIENT, Role.OPERATOR})


@dataclass(frozen=True, slots=True)
class Caller:
    """An admitted A2A caller (`principal` None: the daemon checks no credentials)."""

    principal: Principal | None = None

    @property
    def name(self) -> str:
        return self.principal.name if self.principal is not None else ""

    @property
    def owner(self) -> str:
        """The name its tasks are recorded under (empty without credentials)."""
        return self.name

    @property
    def restricted_to(self) -> str | None:
        """The owner whose tasks alone it may see (None: every task)."""
        principal = self.principal
        return None if principal is None or Role.OPERATOR in principal.roles else principal.name

    def sees(self, record: TaskRecord) -> bool:
        """Whether it may see a task (by the task's owner)."""
        mine = self.restricted_to
        return mine is None or record.owner == mine

    def check_may_call(self, capability: str) -> None:
        """Raises PermissionDeniedError when its credentials do not allow the capability."""
        if self.principal is not None and not self.principal.may_use(capability):
            raise PermissionDeniedError(f"{short(self.name)} may not call capability {short(capability)}")


ANYONE = Caller()


class _CallerUser(User):
    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    @property
    def is_authenticated(self) -> bool:
        return self._caller.principal is not None

    @property
    def user_name(self) -> str:
        return self._caller.name


def root_of(request: Request) -> str:
    """The address the server was reached at (`http://host:port/`), wherever the route is mounted."""
    return f"{request.url.scheme}://{request.url.netloc}/"


def caller_of(context: ServerCallContext) -> Caller:
    """The caller a request handler serves (its call context's)."""
    found = context.state.get(SCOPE_KEY)
    return found if isinstance(found, Caller) else ANYONE


def verdict(auth: Authenticator | None, authorization: str) -> Caller | tuple[int, str]:
    """The caller an `Authorization` header value names, or (HTTP status, why) when it is refused."""
    if auth is None:
        return ANYONE
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if not authorization:
        return 401, "a token is required: send 'Authorization: Bearer TOKEN'"
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN:
        return 401, "the Authorization header must read 'Bearer TOKEN'"
    principal = auth.principal_of_token(token)
    if principal is None:
        return 401, "the token is not known to this server"
    if not principal.roles & _CALLERS:
        return 403, f"{short(principal.name)} may not use the A2A routes: it needs client or operator"
    return Caller(principal)


class A2AGate:
    """An ASGI app that lets in only admitted callers (see `verdict`), then runs `app`."""

    def __init__(self, app: ASGIApp, auth: Authenticator | None) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = verdict(self.auth, Request(scope).headers.get("authorization", ""))
        if isinstance(found, tuple):
            status, reason = found
            body = json.dumps({"error": reason}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            if status == 401:
                headers.append((b"www-authenticate", b"Bearer"))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        scope[SCOPE_KEY] = found
        await self.app(scope, receive, send)


class CallerContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's call context, with the admitted caller in its state (and as its user)."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        caller = request.scope.get(SCOPE_KEY, ANYONE)
        context.state[SCOPE_KEY] = caller
        context.state[BASE_URL_KEY] = root_of(request)
        context.user = _CallerUser(caller)
        return context

    def build_user(self, request: Request) -> User:
        return _CallerUser(request.scope.get(SCOPE_KEY, ANYONE))
