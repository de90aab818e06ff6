"""The ASGI application: the control plane's routes, then Infura's paths for everything else."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException  # FastAPI raises Starlette's own (a body that is not UTF-8: 400)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from mockinfura import __version__
from mockinfura.chains.subscriptions import SubscriptionHub
from mockinfura.config import Config
from mockinfura.control.routes import http_exception_handler, router
from mockinfura.gateway.routes import InfuraEndpoint, VaryOrigin
from mockinfura.gateway.websocket import WebSocketEndpoint
from mockinfura.state import MockState

ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
FASTAPI_PREFIXES = ("/_mock", "/docs", "/redoc", "/openapi.json")
log = logging.getLogger("mockinfura")


class MockApp:
    """The ASGI entry point. Infura's HTTP paths go straight to the gateway's endpoint, with no FastAPI routing or
    middleware on the per-request path (they cost more than the gateway's own work); the control plane, its docs
    and WebSockets go through FastAPI."""

    def __init__(self, fastapi_app: FastAPI, endpoint: InfuraEndpoint, state: MockState) -> None:
        self.fastapi = fastapi_app
        self.endpoint = endpoint
        self.state = state
        self._through_fastapi = VaryOrigin(fastapi_app)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(FASTAPI_PREFIXES):
            await self._through_fastapi(scope, receive, send)
            return
        try:
            response = await self.endpoint(Request(scope, receive))
        except Exception:  # a bug in the gateway: logged, and a JSON-RPC error rather than a bare 500 page
            log.exception("internal error on %s", scope["path"])
            response = Response(INTERNAL_ERROR_BODY, status_code=500, media_type="application/json")
        response.headers["vary"] = "Origin"
        await response(scope, receive, send)


INTERNAL_ERROR_BODY = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error in mockinfura"}}'


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"error": "invalid request", "problems": [str(e.get("msg")) for e in exc.errors()]}, 422)


def create_app(config: Config, state: MockState | None = None) -> MockApp:
    """The whole server as an ASGI app; `app.state.mock` (on the inner FastAPI app) holds the state."""
    state = state or MockState(config)
    app = FastAPI(
        title="mockinfura control plane",
        version=__version__,
        description="The mock's own routes under /_mock/. Infura's paths (/v3/<KEY>, /<network>/v3/<KEY>) "
        "are served beside them, exactly as Infura serves them.",
    )
    app.state.mock = state
    app.include_router(router)
    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_error)
    endpoint = InfuraEndpoint(state)
    websockets = WebSocketEndpoint(state, SubscriptionHub(state.chains), endpoint)
    app.state.websockets = websockets  # counts for /_mock/health
    app.router.routes.append(WebSocketRoute("/{path:path}", websockets.__call__))
    app.router.routes.append(Route("/{path:path}", endpoint.__call__, methods=ALL_METHODS, include_in_schema=False))
    return MockApp(app, endpoint, state)
