"""The ASGI application: the control plane's routes, then Infura's paths for everything else."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.routing import Route, WebSocketRoute

from mockinfura import __version__
from mockinfura.chains.subscriptions import SubscriptionHub
from mockinfura.config import Config
from mockinfura.control.routes import http_exception_handler, router
from mockinfura.gateway.routes import InfuraEndpoint, VaryOrigin
from mockinfura.gateway.websocket import WebSocketEndpoint
from mockinfura.state import MockState

ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"error": "invalid request", "problems": [str(e.get("msg")) for e in exc.errors()]}, 422)


def create_app(config: Config, state: MockState | None = None) -> VaryOrigin:
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
    wrapped = VaryOrigin(app)
    wrapped.state = state  # type: ignore[attr-defined]
    wrapped.fastapi = app  # type: ignore[attr-defined]
    return wrapped
