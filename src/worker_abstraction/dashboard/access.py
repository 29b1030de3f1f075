"""Who may see the dashboard: operators, when the daemon checks credentials; anyone when it does not.

A program sends its token as `Authorization: Bearer TOKEN`. A browser signs in once (the login form, or
`/?token=TOKEN`), which sets an HttpOnly, SameSite=Strict cookie holding the token (Secure over HTTPS).
Requests that change something (POST) must also carry the `X-WA-Dashboard` header, which the page's own
`fetch` sets and which a form or a link on another site cannot (a cross-site request with a custom header
needs a CORS preflight, which this server never grants): so no other site can make a visitor's browser
requeue or purge, whether the dashboard checks credentials or is open on 127.0.0.1.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from worker_abstraction.auth import Authenticator, Role

COOKIE = "wa_dashboard"
CSRF_HEADER = "x-wa-dashboard"
MAX_TOKEN = 4096  # characters; a longer "token" is refused unread


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a check: `status` 0 lets the request in; otherwise 401, 403 and why."""

    status: int
    reason: str = ""
    by_cookie: bool = False


ADMITTED = Verdict(0)


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who an admitted request comes from, as the page shows it."""

    auth: bool  # the dashboard checks credentials (so the page offers to sign out)
    name: str  # the principal's name ("" when credentials are not checked)
    operator: bool  # may cancel, retry, requeue, purge, answer, approve and deny (credentials off: anyone)


class Gate:
    """Checks each request against the daemon's Authenticator (None: everyone is let in).

    Args:
        auth: the daemon's Authenticator; its token file says who is an operator.
        secure_cookie: mark the sign-in cookie Secure (the dashboard is served over HTTPS).
    """

    def __init__(self, auth: Authenticator | None, *, secure_cookie: bool = False) -> None:
        self.auth = auth
        self.secure_cookie = secure_cookie

    @property
    def open(self) -> bool:
        return self.auth is None

    def check_token(self, token: str) -> Verdict:
        """Whether `token` names an operator."""
        if self.auth is None:
            return ADMITTED
        if not token or len(token) > MAX_TOKEN:
            return Verdict(401, "a token is required: sign in, or send 'Authorization: Bearer TOKEN'")
        principal = self.auth.principal_of_token(token)
        if principal is None:
            return Verdict(401, "the token is not known to this server")
        if Role.OPERATOR not in principal.roles:
            return Verdict(403, f"{principal.name} is not an operator: the dashboard is for operators only")
        return ADMITTED

    def who(self, request: Request) -> str:
        """The name of an admitted request's sender, for the log ("an operator" when nobody is checked)."""
        return self.visitor(request).name or "an operator"

    def visitor(self, request: Request) -> Visitor:
        """Who an admitted request comes from (call after `check` let it in)."""
        if self.auth is None:
            return Visitor(auth=False, name="", operator=True)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE, "")
        principal = self.auth.principal_of_token(token) if token and len(token) <= MAX_TOKEN else None
        if principal is None:
            return Visitor(auth=True, name="", operator=False)
        return Visitor(auth=True, name=principal.name, operator=Role.OPERATOR in principal.roles)

    def check(self, request: Request) -> Verdict:
        """Whether the request comes from an operator (and, for a POST, from the dashboard's own page)."""
        if request.method not in ("GET", "HEAD") and CSRF_HEADER not in request.headers:
            return Verdict(403, f"a request that changes something needs the {CSRF_HEADER} header")
        if self.auth is None:
            return ADMITTED
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return Verdict(401, "the Authorization header must read 'Bearer TOKEN'")
            return self.check_token(token.strip())
        verdict = self.check_token(request.cookies.get(COOKIE, ""))
        return Verdict(verdict.status, verdict.reason, by_cookie=True)


async def bounded_body(request: Request, limit: int) -> bytes:
    """A POST's body, read as it comes, refused past `limit` bytes (ValueError) rather than held whole."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ValueError(f"the request body may be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
