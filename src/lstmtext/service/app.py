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
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model

from lstmtext.predictor import Predictor
from lstmtext.service.batcher import MicroBatcher, Overloaded, RequestTimeout
from lstmtext.service.config import ServiceConfig
from lstmtext.service.limits import ASGIApp, BodyLimitMiddleware, Receive, Scope, Send, send_json
from lstmtext.service.observe import ObserveMiddleware, ServiceMetrics
from lstmtext.service.protocol import METRICS_STATE_KEY
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


def json_structure(body: bytes, max_strings: int) -> bytes | None:
    """What a JSON body holds outside its strings, whitespace removed (``b'{:[,]}'`` for ``{"texts": ["a", "b"]}``).

    None when the body holds more than ``max_strings`` strings. A few C-speed passes over the bytes (about 2 ms
    per MiB at worst), whatever the body holds: escaped backslashes and quotes are dropped, and what is left
    between the first ``2 * max_strings`` quotes is cut out. The service's bodies are a handful of keys and at
    most ``max_texts`` strings, so this bounds the work a body can make the JSON parser do (a MiB of keys,
    numbers or brackets costs it 15-50 ms on the event loop) before the parser sees it, and tells which keys
    a valid body holds without listing them. Exact for valid JSON; invalid JSON is left to the parser.
    """
    if b"\\\\" in body:  # escaped backslashes first: a quote after one is a real quote
        body = body.replace(b"\\\\", b"")
    if b'\\"' in body:
        body = body.replace(b'\\"', b"")  # then every quote left opens or closes a string
    parts = body.split(b'"', 2 * max_strings + 1)
    if len(parts) > 2 * max_strings + 1:
        return None
    return b"".join(parts[0::2]).translate(None, b" \t\r\n")


_SMALL_BODY = 16 << 10


def _other_keys(body: bytes, strings: Sequence[str], structure: bytes | None = None) -> bool:
    """Whether a body that validated (other keys ignored) holds a key besides the one whose ``strings`` it has.

    Each key is followed by a colon outside strings. Without an escaped colon (``\\u003a``) in the body, the
    colons inside the validated strings are the ones the body spells there, so any colon beyond those and the
    key's own is another key's (a C count, no parsing); otherwise, or given it, the ``json_structure`` decides.
    """
    if structure is None:
        colons = body.count(b":")
        if colons == 1:
            return False
        if b"\\u003a" not in body and b"\\u003A" not in body:
            return colons - 1 != sum(s.count(":") for s in strings)
        structure = json_structure(body, len(strings) + 1)
        if structure is None:
            return True
    return structure.count(b":") > 1


class ReloadRequest(BaseModel):
    """Which checkpoint folder to load (default: the one being served, re-read)."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = None


class ReloadParse(ReloadRequest):
    """What parses a reload body: other keys ignored by pydantic, then refused after ``json_structure``."""

    model_config = ConfigDict(extra="ignore")


class AdminAuthMiddleware:
    """``/admin/*`` requests need ``Authorization: Bearer <token>``; checked before the body is read or parsed.

    The scheme is matched case-insensitively (RFC 7235); a bare token, another scheme or a wrong token gets 401
    with ``WWW-Authenticate: Bearer``. Tokens are compared in constant time.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def authorized(self, scope: Scope) -> bool:
        for k, v in scope.get("headers", ()):
            if k == b"authorization":
                scheme, _, credentials = v.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(b" "), self.token)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/admin/") and not self.authorized(scope):
            await send_json(send, 401, {"detail": "missing or wrong admin token (Authorization: Bearer <token>)"},
                            [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)


def _predict_request_model(config: ServiceConfig, extra: str = "forbid") -> type[BaseModel]:
    text = Annotated[str, StringConstraints(max_length=config.max_text_chars)]
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra=extra),
        __doc__="Raw texts to classify.",
        texts=(list[text], Field(max_length=config.max_texts,
                                 description=f"Raw texts: at most {config.max_texts} (max_texts), each at most "
                                             f"{config.max_text_chars} characters (max_text_chars).")),
    )


_MAX_ERRORS = 10  # errors listed in a 422 (the rest are counted)
_MAX_ERROR_TEXT = 200  # characters of one error's message


def _bounded_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """The first ``_MAX_ERRORS`` of pydantic's errors, without their inputs, each field at most a few hundred bytes.

    ``loc`` keeps only what the schema names (``texts`` and item indexes), so no client key is ever echoed.
    """
    out = []
    for e in errors[:_MAX_ERRORS]:
        loc = [x if isinstance(x, int) or x in ("body", "texts", "path") else "?" for x in e.get("loc", ())]
        item: dict[str, Any] = {"type": str(e.get("type", ""))[:64], "loc": loc[:8],
                                "msg": str(e.get("msg", ""))[:_MAX_ERROR_TEXT]}
        ctx = {k: v for k, v in (e.get("ctx") or {}).items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if ctx:
            item["ctx"] = ctx
        out.append(item)
    return out


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
    manager = ModelManager(batcher, metrics, load, source, warmup=config.warmup, freeze_gc=freeze_gc,
                           max_info_bytes=config.max_model_info_bytes)
    metrics.queue_depth.set_function(lambda: batcher.queued_texts)
    retry_after = {"Retry-After": str(config.retry_after_s)}
    del initial, model

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if handle_sigterm:
            _install_sigterm_drain(manager, config.shutdown_delay_s)
        # pop: the app must not keep the first model alive after a reload replaces it
        tasks = [asyncio.create_task(manager.start(pending.pop() if pending else None))]
        if config.watch_interval_s is not None and source is not None:
            tasks.append(asyncio.create_task(manager.watch(config.watch_interval_s)))
        try:
            yield {METRICS_STATE_KEY: metrics}  # where the connection guard (protocol.py) counts what it closes
        finally:
            manager.begin_drain()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(batcher.stop)

    app = ServiceApp(title="lstmtext", version=library_versions()["lstmtext"], lifespan=lifespan,
                  description="Text classification with an lstmtext LSTM model.")
    app.state.manager, app.state.batcher, app.state.metrics, app.state.config = manager, batcher, metrics, config
    PredictRequest = _predict_request_model(config)  # the documented schema (no other key)
    # What parses bodies: the same, ignoring other keys, which json_structure then detects. Refusing them inside
    # pydantic builds one error per key: 0.11 s on the event loop for the 95,000 keys 1 MiB holds.
    ParseRequest = _predict_request_model(config, extra="ignore")

    def _invalid_response(errors: Sequence[Any], count: int | None = None) -> JSONResponse:
        # Bounded in count and size, and never echoing the input: error lists built from client input could
        # otherwise be far larger than the body (one error per unknown key) and be built on the event loop.
        listed = _bounded_errors(errors)
        count = len(errors) if count is None else count
        message = "; ".join(_limit_hint(e, config) for e in listed[:5])
        if count > len(listed):
            message += f" (and {count - len(listed)} more errors)"
        return JSONResponse({"detail": listed, "message": message}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        return _invalid_response(errors[:_MAX_ERRORS], len(errors))

    errors = {413: {"model": ErrorOut, "description": "Body larger than max_body_bytes"},
              422: {"model": InvalidOut, "description": "Malformed JSON, wrong types, too many or too long texts"},
              503: {"model": ErrorOut, "description": "Not ready, queue full or timed out (see Retry-After)"}}

    request_schema = PredictRequest.model_json_schema()

    async def answer_predict(body: bytes) -> Response:
        # The body is parsed here (pydantic's JSON parser, whatever the Content-Type) rather than by FastAPI, so
        # that `curl -d` (form Content-Type) works and malformed JSON / non-UTF-8 bytes get the same 422 as wrong
        # types.
        # Bodies past _SMALL_BODY have their shape checked before pydantic parses them: the key and at most
        # max_texts strings; outside them "{:[" + commas + "]}", and a few bytes per item for a wrong value
        # (null, a number) that pydantic then names. Smaller bodies cost pydantic under a millisecond whatever
        # they hold, so they skip it (it would cost more than their validation).
        structure = None
        if len(body) > _SMALL_BODY:
            structure = json_structure(body, 1 + config.max_texts)
            if structure is None or len(structure) > 8 + 32 * config.max_texts:
                return _invalid_response([{"type": "too_long", "loc": ("body",), "msg": (
                    f'not a JSON object {{"texts": [...]}} of at most {config.max_texts} strings: it holds more '
                    f"values than that (limit max_texts={config.max_texts})")}])
        try:
            texts = ParseRequest.model_validate_json(body).texts  # type: ignore[attr-defined]
        except ValidationError as e:
            # at most max_texts + 1 errors: the list's length is checked as it is read
            return _invalid_response(e.errors(include_url=False, include_input=False))
        if _other_keys(body, texts, structure):
            return _invalid_response([{"type": "extra_forbidden", "loc": ("body",),
                                       "msg": "unknown or repeated field: the body must be {\"texts\": [...]} only"}])
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
        """The model being served: config, vocabulary size, metrics, padding, labels and versions.

        A description made when the model was loaded, bounded by ``max_model_info_bytes``; it leaves out where
        the checkpoint lies on the server and the training command line.
        """
        if batcher.predictor is None or manager.info is None:
            return JSONResponse({"detail": f"no model loaded yet ({manager.state})"}, 503, headers=retry_after)
        return JSONResponse({**manager.info, "loaded_at": manager.loaded_at, "service": config.to_dict()})

    @app.get("/metrics", response_class=Response)
    async def metrics_endpoint() -> Response:
        """Prometheus text exposition of the service's metrics."""
        data, content_type = metrics.render()
        return Response(data, media_type=content_type)

    outer: ASGIApp = BodyLimitMiddleware(app.dispatch, max_body_bytes=config.max_body_bytes)
    if config.admin_token is not None:

        @app.post("/admin/reload", responses={401: {"model": ErrorOut}, 409: {"model": ErrorOut},
                                              422: {"model": ErrorOut}},
                  openapi_extra={"requestBody": {"required": False, "content": {
                      "application/json": {"schema": ReloadRequest.model_json_schema()}}}})
        async def reload(request: Request,
                         authorization: Annotated[str | None, Header(description="Bearer <admin token>")] = None,
                         ) -> JSONResponse:
            """Load a checkpoint, verify it and a smoke prediction, then swap it in (the old model stays on failure).

            The token is checked (``AdminAuthMiddleware``) before the body is read.
            """
            body = await request.body()
            structure = json_structure(body, 2)  # {"path": "..."} or {"path": null}
            if structure is None or len(structure) > 64:
                return _invalid_response([{"type": "too_long", "loc": ("body",),
                                           "msg": 'not a JSON object {"path": "..."}: it holds more than that'}])
            try:
                wanted = ReloadParse.model_validate_json(body) if body.strip() else None
            except ValidationError as e:
                return _invalid_response(e.errors(include_url=False, include_input=False))
            if _other_keys(body, [wanted.path or ""] if wanted else [], structure):
                return _invalid_response([{"type": "extra_forbidden", "loc": ("body",),
                                           "msg": "unknown or repeated field: the body may only hold \"path\""}])
            try:
                return JSONResponse(await manager.reload(wanted.path if wanted else None))
            except ReloadError as e:
                version = batcher.predictor.version if batcher.predictor else None
                code = 409 if isinstance(e, ReloadInProgress) else 422
                return JSONResponse({"detail": f"reload failed, still serving version {version}: {e}"}, code)

        outer = AdminAuthMiddleware(outer, config.admin_token)

    app.fast_routes[("POST", "/v1/predict")] = predict_asgi
    app.outer = ObserveMiddleware(outer, metrics=metrics, routes=_ROUTES, access_log=config.access_log)
    return app
