"""The FastAPI app factory: prediction, health, model info, metrics and admin reload over one Predictor.

Layers, outermost first: metrics + JSON access log (:class:`ObserveMiddleware`), the body cap
(:class:`BodyLimitMiddleware`, before any parsing), then ``POST /v1/predict`` straight to its handler
(:class:`ServiceApp`; every other route through FastAPI), pydantic's validation of the JSON document (count
and length of texts), then the micro-batcher that runs the model on its own thread.
"""

import asyncio
import contextlib
import hmac
import json
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model

from lstmtext.predictor import Predictor
from lstmtext.service.batcher import MicroBatcher, Overloaded, RequestTimeout
from lstmtext.service.config import ServiceConfig
from lstmtext.service.limits import ASGIApp, BodyLimitMiddleware, Receive, Scope, Send
from lstmtext.service.observe import ObserveMiddleware, ServiceMetrics
from lstmtext.service.reload import Loader, ModelManager, ReloadError, ReloadInProgress
from lstmtext.utils.versions import library_versions

logger = logging.getLogger("lstmtext.service")

_ROUTES = ("/v1/predict", "/v1/model", "/healthz", "/livez", "/readyz", "/metrics", "/admin/reload",
           "/openapi.json", "/docs", "/redoc")


class ServiceApp(FastAPI):
    """FastAPI, with our middlewares outermost and the hottest routes dispatched ahead of FastAPI's own stack.

    FastAPI routes every request through about eight ASGI layers, a Request object and dependency solving.
    On the 2-core benchmark machine a bare FastAPI ``return {...}`` route answers 3,800-4,000 requests/s under
    uvicorn where the same answer as a plain ASGI function answers 16,000-18,000 (``bench/bench_http_stack.py``,
    bench/RESULTS.md): that stack, not the model, set the service's latency under load. So ``fast_routes``
    ((method, path) -> plain ASGI app) are called directly; FastAPI still declares those routes (OpenAPI
    schema, docs) and serves every other one.

    ``outer`` wraps every HTTP request, fast or not (metrics, access log, body limit); it calls
    :meth:`dispatch`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fast_routes: dict[tuple[str, str], ASGIApp] = {}
        self.outer: ASGIApp = self.dispatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.outer(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A fast route when one matches (and no root path is in play), FastAPI otherwise."""
        route = self.fast_routes.get((scope["method"], scope["path"])) if not scope.get("root_path") else None
        if route is not None:
            await route(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


class PredictionOut(BaseModel):
    """One text's prediction."""

    label: str = Field(description="Name of the predicted class.")
    label_id: int = Field(description="Index of the predicted class.")
    probability: float = Field(description="Probability of the predicted class.")
    probabilities: list[float] = Field(description="Probability of every class, in class-index order.")


class PredictResponse(BaseModel):
    """Predictions, one per input text, in order."""

    predictions: list[PredictionOut]
    model_version: str = Field(description="Version (manifest hash) of the model that answered.")


class ErrorOut(BaseModel):
    """An error answer."""

    detail: str


class InvalidOut(BaseModel):
    """A request that is not a valid prediction request (malformed JSON, wrong types, over a limit)."""

    detail: list[dict[str, Any]] = Field(description="pydantic's errors: loc, msg, type, ctx.")
    message: str = Field(description="The first errors in one line, naming the limit when one was exceeded.")


class ReloadRequest(BaseModel):
    """Which checkpoint folder to load (default: the one being served, re-read)."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = None


def _predict_request_model(config: ServiceConfig) -> type[BaseModel]:
    text = Annotated[str, StringConstraints(max_length=config.max_text_chars)]
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        __doc__="Raw texts to classify.",
        texts=(list[text], Field(max_length=config.max_texts,
                                 description=f"Raw texts: at most {config.max_texts} (max_texts), each at most "
                                             f"{config.max_text_chars} characters (max_text_chars).")),
    )


def _limit_hint(err: dict[str, Any], config: ServiceConfig) -> str:
    loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
    if err.get("type") == "json_invalid":
        return f"body is not valid JSON: {err.get('msg', '')}"
    msg = f"{loc}: {err.get('msg', 'invalid')}"
    if err.get("type") == "too_long" and tuple(err.get("loc", ()))[-1:] == ("texts",):
        msg += f" (limit max_texts={config.max_texts})"
    elif err.get("type") == "string_too_long":
        msg += f" (limit max_text_chars={config.max_text_chars})"
    return msg


def _install_sigterm_drain(manager: ModelManager, delay_s: float) -> None:
    """Make SIGTERM turn readiness to 503 at once, then (after ``delay_s``) hand over to the server's handler."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)

    def forward(sig: int, frame: Any) -> None:
        if callable(previous):
            previous(sig, frame)
        else:
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    def on_sigterm(sig: int, frame: Any) -> None:
        first = not manager.draining
        manager.begin_drain()
        if first and delay_s > 0:
            loop.call_soon_threadsafe(loop.call_later, delay_s, forward, sig, frame)
        else:
            forward(sig, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def create_app(
    model: Predictor | str | os.PathLike[str],
    config: ServiceConfig | None = None,
    *,
    load: Loader | None = None,
    source: str | os.PathLike[str] | None = None,
    handle_sigterm: bool = False,
    freeze_gc: bool = False,
) -> ServiceApp:
    """Build the prediction service.

    Args:
        model: a ready :class:`~lstmtext.predictor.Predictor`, or a checkpoint folder loaded in the
            background at startup (``/readyz`` answers 503 until it is loaded and warmed up).
        config: limits, batching and shutdown settings (default :class:`ServiceConfig`).
        load: loads a checkpoint folder (first load and ``/admin/reload``); default
            ``Predictor.from_checkpoint``.
        source: the folder a ready ``model`` was loaded from (what a reload without a path and
            ``watch_interval_s`` re-read); ignored when ``model`` is a folder.
        handle_sigterm: on SIGTERM turn ``/readyz`` to 503 at once and hand over to the server's
            graceful shutdown after ``config.shutdown_delay_s`` (set by ``lstmtext serve``).
        freeze_gc: ``gc.freeze()`` after each model load, keeping full garbage collections (long pauses of
            every request) off the serving path; process-wide, so set by ``lstmtext serve`` only.

    Returns:
        A :class:`ServiceApp` (a FastAPI app): ``POST /v1/predict``, ``GET /healthz``, ``/livez``, ``/readyz``,
        ``/v1/model``, ``/metrics``, ``/openapi.json`` and, when ``config.admin_token`` is set,
        ``POST /admin/reload``.

    >>> app = create_app(predictor)                    # doctest: +SKIP
    >>> TestClient(app).post("/v1/predict", json={"texts": ["great film"]}).json()  # doctest: +SKIP
    """
    config = config or ServiceConfig()
    if load is None:
        load = getattr(Predictor, "from_checkpoint", None)
    initial = model if isinstance(model, Predictor) else None
    pending = [initial]
    if initial is None:
        source = os.fspath(model)
    elif source is not None:
        source = os.fspath(source)
    metrics = ServiceMetrics()
    batcher = MicroBatcher(None, max_batch_size=config.max_batch_size, window_s=config.batch_window_ms / 1000,
                           max_queue_texts=config.max_queue_texts, torch_threads=config.torch_threads,
                           on_batch=metrics.observe_batch)
    manager = ModelManager(batcher, metrics, load, source, warmup=config.warmup, freeze_gc=freeze_gc)
    metrics.queue_depth.set_function(lambda: batcher.queued_texts)
    retry_after = {"Retry-After": str(config.retry_after_s)}
    del initial, model

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if handle_sigterm:
            _install_sigterm_drain(manager, config.shutdown_delay_s)
        # pop: the app must not keep the first model alive after a reload replaces it
        tasks = [asyncio.create_task(manager.start(pending.pop() if pending else None))]
        if config.watch_interval_s is not None and source is not None:
            tasks.append(asyncio.create_task(manager.watch(config.watch_interval_s)))
        try:
            yield
        finally:
            manager.begin_drain()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(batcher.stop)

    app = ServiceApp(title="lstmtext", version=library_versions()["lstmtext"], lifespan=lifespan,
                  description="Text classification with an lstmtext LSTM model.")
    app.state.manager, app.state.batcher, app.state.metrics, app.state.config = manager, batcher, metrics, config
    PredictRequest = _predict_request_model(config)

    def _invalid_response(errors: Sequence[Any]) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k != "input"} for e in errors]  # do not echo inputs back
        message = "; ".join(_limit_hint(e, config) for e in errors[:5])
        return JSONResponse({"detail": jsonable_encoder(errors), "message": message}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid_response(exc.errors())

    errors = {413: {"model": ErrorOut, "description": "Body larger than max_body_bytes"},
              422: {"model": InvalidOut, "description": "Malformed JSON, wrong types, too many or too long texts"},
              503: {"model": ErrorOut, "description": "Not ready, queue full or timed out (see Retry-After)"}}

    request_schema = PredictRequest.model_json_schema()

    async def answer_predict(body: bytes) -> Response:
        # The body is parsed here (pydantic's JSON parser, whatever the Content-Type) rather than by FastAPI, so
        # that `curl -d` (form Content-Type) works and malformed JSON / non-UTF-8 bytes get the same 422 as wrong
        # types.
        try:
            texts = PredictRequest.model_validate_json(body).texts  # type: ignore[attr-defined]
        except ValidationError as e:
            return _invalid_response(e.errors(include_url=False))
        try:
            if not texts and batcher.predictor is not None:
                preds, version = [], batcher.predictor.version
            else:
                preds, version = await batcher.predict(texts, config.request_timeout_s)
        except (Overloaded, RequestTimeout) as e:
            metrics.rejected.labels("queue_full" if isinstance(e, Overloaded) else "timeout").inc()
            return JSONResponse({"detail": f"overloaded: {e}; retry later"}, status_code=503, headers=retry_after)
        payload = {"predictions": [p.to_dict() for p in preds], "model_version": version}
        return Response(json.dumps(payload), media_type="application/json")

    @app.post("/v1/predict", response_model=PredictResponse, responses=errors, openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": request_schema}}}})
    async def predict(request: Request) -> Response:
        """Classify raw texts: a label and probabilities for each."""
        return await answer_predict(await request.body())

    async def predict_asgi(scope: Scope, receive: Receive, send: Send) -> None:
        """``predict`` as a plain ASGI app: what :class:`ServiceApp` runs for ``POST /v1/predict``."""
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        try:
            response = await answer_predict(b"".join(chunks))
        except Exception:  # FastAPI's stack would answer 500 too; say so in JSON and keep the trace in the log
            logger.exception("POST /v1/predict failed")
            response = JSONResponse({"detail": "internal error while predicting; see the server log"}, 500)
        await response(scope, receive, send)

    def _status() -> JSONResponse:
        body = {"status": manager.state, "model_version": batcher.predictor.version if batcher.predictor else None}
        if manager.error:
            body["detail"] = manager.error
        return JSONResponse(body, status_code=200 if manager.ready else 503,
                            headers=None if manager.ready else retry_after)

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        """The process is up (200 as long as it can answer)."""
        return {"status": "alive"}

    @app.get("/readyz", responses={503: {"description": "Loading, warming up, failed or shutting down"}})
    async def readyz() -> JSONResponse:
        """200 once the model is loaded and warmed up; 503 before that and from the start of shutdown."""
        return _status()

    @app.get("/healthz", responses={503: {"description": "Loading, warming up, failed or shutting down"}})
    async def healthz() -> JSONResponse:
        """Same answer as ``/readyz``: 200 when the service can predict."""
        return _status()

    @app.get("/v1/model", responses={503: {"model": ErrorOut}})
    async def model_info() -> JSONResponse:
        """The model being served: config, vocabulary size, metrics, padding, labels and versions."""
        p = batcher.predictor
        if p is None:
            return JSONResponse({"detail": f"no model loaded yet ({manager.state})"}, 503, headers=retry_after)
        info = p.metadata
        info.update(source=manager.source, loaded_at=manager.loaded_at, service=config.to_dict(),
                    versions={**library_versions(), **info.get("versions", {})})
        return JSONResponse(jsonable_encoder(info))

    @app.get("/metrics", response_class=Response)
    async def metrics_endpoint() -> Response:
        """Prometheus text exposition of the service's metrics."""
        data, content_type = metrics.render()
        return Response(data, media_type=content_type)

    if config.admin_token is not None:
        token = config.admin_token.encode()

        @app.post("/admin/reload", responses={401: {"model": ErrorOut}, 409: {"model": ErrorOut},
                                              422: {"model": ErrorOut}})
        async def reload(body: ReloadRequest | None = None,
                         authorization: Annotated[str | None, Header()] = None) -> JSONResponse:
            """Load a checkpoint, verify it and a smoke prediction, then swap it in (the old model stays on failure)."""
            given = (authorization or "").removeprefix("Bearer ").encode()
            if not hmac.compare_digest(given, token):
                return JSONResponse({"detail": "missing or wrong admin token (Authorization: Bearer ...)"}, 401)
            try:
                return JSONResponse(await manager.reload(body.path if body else None))
            except ReloadError as e:
                version = batcher.predictor.version if batcher.predictor else None
                code = 409 if isinstance(e, ReloadInProgress) else 422
                return JSONResponse({"detail": f"reload failed, still serving version {version}: {e}"}, code)

    app.fast_routes[("POST", "/v1/predict")] = predict_asgi
    app.outer = ObserveMiddleware(BodyLimitMiddleware(app.dispatch, max_body_bytes=config.max_body_bytes),
                                  metrics=metrics, routes=_ROUTES, access_log=config.access_log)
    return app
