"""The team served as an A2A agent beside the dashboard: its HTTP routes (see `a2a_routes`).

GET  /.well-known/agent-card.json                     the team's card (`a2a_card`)
POST /a2a                                             the JSON-RPC binding (`a2a_handler`)
*    /a2a/rest/...                                    the HTTP+JSON binding (message:send, tasks/{id}, ...)
GET  /a2a/workers/{id}/.well-known/agent-card.json    one worker's card
POST /a2a/workers/{id}                                its JSON-RPC binding: the tasks sent there run on it

With credentials on, every route but the cards needs a client's or an operator's bearer token
(`a2a_access`); the cards list their skills only to such a caller. The SDK loads when the routes are made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router, request_response

from worker_abstraction.auth import Authenticator

if TYPE_CHECKING:
    from a2a.server.context import ServerCallContext
    from a2a.types import AgentCard

    from worker_abstraction.orchestrator.embedded import AsyncOrchestrator
    from worker_abstraction.types import WorkerInfo


def a2a_routes(orchestrator: AsyncOrchestrator, auth: Authenticator | None) -> list[BaseRoute]:
    """The A2A routes of the team `orchestrator` runs (to add to the dashboard's app).

    Args:
        orchestrator: the engine whose workers and tasks the agent offers.
        auth: the daemon's Authenticator (None: credentials are not checked).
    """
    from a2a.server.routes import create_rest_routes
    from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
    from google.protobuf import json_format

    import worker_abstraction
    from worker_abstraction.interop.a2a_access import (
        BASE_URL_KEY,
        A2AGate,
        CallerContextBuilder,
        root_of,
        verdict,
    )
    from worker_abstraction.interop.a2a_card import JSONRPC_PATH, REST_PATH, WORKERS_PATH, agent_card
    from worker_abstraction.interop.a2a_handler import A2ARequestHandler
    from worker_abstraction.interop.http_bounds import BodyBound

    builder = CallerContextBuilder()
    secured = auth is not None

    async def live_worker(worker_id: str) -> WorkerInfo | None:
        return next((w for w in await orchestrator.workers() if w.worker_id == worker_id), None)

    async def card(base_url: str, worker_id: str, *, with_skills: bool) -> AgentCard | None:
        worker = await live_worker(worker_id) if worker_id else None
        if worker_id and worker is None:
            return None
        workers = await orchestrator.workers() if worker is None else []
        version = worker_abstraction.__version__
        return agent_card(workers, base_url, secured=secured, with_skills=with_skills, worker=worker, version=version)

    async def card_route(request: Request) -> Response:
        worker_id = str(request.path_params.get("worker_id", ""))
        admitted = not isinstance(verdict(auth, request.headers.get("authorization", "")), tuple)
        found = await card(root_of(request), worker_id, with_skills=admitted)
        if found is None:
            return JSONResponse({"error": f"no live worker {worker_id[:64]!r}"}, status_code=404)
        return JSONResponse(json_format.MessageToDict(found), headers={"Cache-Control": "no-store"})

    def handler_for(worker_id: str) -> A2ARequestHandler:
        async def card_of(context: ServerCallContext) -> AgentCard:
            from a2a.types import InvalidParamsError

            found = await card(str(context.state.get(BASE_URL_KEY, "/")), worker_id, with_skills=True)
            if found is None:
                raise InvalidParamsError(message=f"no live worker {worker_id[:64]!r}")
            return found

        return A2ARequestHandler(orchestrator, card_of, worker_id=worker_id)

    team = JsonRpcDispatcher(handler_for(""), context_builder=builder)

    async def worker_rpc(request: Request) -> Response:
        dispatcher = JsonRpcDispatcher(handler_for(str(request.path_params["worker_id"])), context_builder=builder)
        return await dispatcher.handle_requests(request)

    rest = Router(create_rest_routes(handler_for(""), context_builder=builder))
    return [
        Route("/.well-known/agent-card.json", card_route, methods=["GET"]),
        Route(JSONRPC_PATH, BodyBound(A2AGate(request_response(team.handle_requests), auth)), methods=["POST"]),
        Mount(REST_PATH, app=BodyBound(A2AGate(rest, auth))),
        Route(WORKERS_PATH + "/{worker_id}/.well-known/agent-card.json", card_route, methods=["GET"]),
        Route(WORKERS_PATH + "/{worker_id}", BodyBound(A2AGate(request_response(worker_rpc), auth)), methods=["POST"]),
    ]
