"""The ASGI application: ``gunicorn -c /etc/berth/gunicorn.conf.py app.main:app``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypedDict

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp

from app.api.errors import unhandled_error_handler, validation_error_handler
from app.api.fast_path import PATH as PREDICT_PATH
from app.api.fast_path import PredictShortcut
from app.api.main import routers
from app.api.routes import predict
from app.core import metrics
from app.core.body_limit import BodyLimitMiddleware
from app.core.config import Settings
from app.core.logging import configure_logging
from app.core.middleware import RequestContextMiddleware
from app.services.auth import KeyRing
from app.services.fallback import make_cache
from app.services.inference import Predictor
from app.services.model_store import ModelStore
from app.services.observation import Observer


class State(TypedDict):
    """Lifespan state, copied into every request's ``request.state``."""

    settings: Settings
    model_store: ModelStore
    predictor: Predictor


def make_lifespan(
    settings: Settings, store: ModelStore | None = None
) -> Callable[[FastAPI], AbstractAsyncContextManager[State]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        # Each worker loads and checks the bundle once. A bad bundle does not stop the process:
        # /health stays 200 while /ready and /v1/* answer 503 with the reason.
        model_store = store or ModelStore(
            settings.model_dir,
            threads=settings.inference_threads,
            retry_seconds=settings.model_retry_seconds,
        )
        if model_store.model is None:
            model_store.load()
        predictor = Predictor(
            make_cache(settings),
            budget_ms=settings.latency_budget_ms,
            threads=settings.inference_pool_threads,
            default=settings.fallback_default.answer() if settings.fallback_default else None,
            observer=Observer.from_settings(settings),
        )
        try:
            yield {"settings": settings, "model_store": model_store, "predictor": predictor}
        finally:
            metrics.pending.flush()
            predictor.close()
            if predictor.observer is not None:
                predictor.observer.close()

    return lifespan


NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def operation_id(route: APIRoute) -> str:
    """Stable OpenAPI operation ids: ``<tag>-<function name>``."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


class BerthAPI(FastAPI):
    """FastAPI with ``outside`` wrapped around its whole middleware stack, error handling
    included: there, the request context (id, access log, metrics) also covers the answers of
    the error handlers, and the predict fast path skips every FastAPI layer."""

    outside: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack if self.outside is None else self.outside(stack)


def create_app(settings: Settings | None = None, store: ModelStore | None = None) -> FastAPI:
    """The app; ``store`` replaces the model store built from ``settings`` (tests)."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format, settings.log_flush_ms / 1000)
    metrics.configure(settings.metrics_flush_ms / 1000)
    app = BerthAPI(
        title="Berth",
        summary="Predictions from a verified model bundle.",
        lifespan=make_lifespan(settings, store),
        generate_unique_id_function=operation_id,
        # Metrics are Prometheus' (app.core.metrics) and no OpenTelemetry SDK is installed:
        # skip FastAPI's per-request check for configured OpenTelemetry providers.
        telemetry=NO_TELEMETRY,
    )
    keyring = app.state.keyring = KeyRing(settings.api_keys_file)
    for router in routers:
        app.include_router(router)
    shortcut = PredictShortcut(
        route_of(predict.router, PREDICT_PATH, "POST"), keyring, settings.max_body_bytes
    )
    # Outermost first: request context (with the predict shortcut), body limit, then FastAPI's
    # own stack (500 handler, exception handlers, routing).
    app.outside = lambda stack: RequestContextMiddleware(
        BodyLimitMiddleware(stack, max_bytes=settings.max_body_bytes), shortcut
    )
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
    return app


def route_of(router: APIRouter, path: str, method: str) -> APIRoute:
    return next(
        route
        for route in router.routes
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ())
    )


app = create_app()
