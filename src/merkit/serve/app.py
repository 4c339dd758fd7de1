"""The HTTP service: a model loaded once per worker, songs in, quadrants out.

Endpoints
---------
``POST /v1/predict``
    A multipart upload (field ``file``; ``?segments=true`` adds the window timeline) → one
    :class:`merkit.product.prediction.PredictionResult`, the item ``merkit predict --format json``
    prints
    for that file (``path`` is the uploaded file's name).
``GET /v1/model``
    The model's manifest, a one-paragraph summary, its card and this service's limits.
``GET /healthz``
    ``{"status": "ok", ...}`` once the model is loaded.
``GET /``
    The web page (:mod:`merkit.serve` ``static/``); ``/docs`` the API's Swagger UI, served from
    the package (no CDN); ``/openapi.json`` the schema.

Every refusal is a JSON body ``{"error": "..."}`` with a 4xx status naming the problem; a fault
of the service itself is a 500 with the same shape and no traceback (it is logged instead).
Predictions run in worker threads, at most ``max_concurrent`` at a time per process.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import anyio
import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from merkit._version import __version__
from merkit.core.errors import MerkitError, ModelError
from merkit.product.predict import Predictor, load_model
from merkit.product.prediction import PredictionResult
from merkit.product.shipped import model_name
from merkit.serve.limits import BodySizeLimit
from merkit.serve.settings import ServeSettings
from merkit.serve.upload import (
    UploadError,
    check_duration,
    check_part_type,
    client_name,
    multipart_reason,
    rename,
    saved_upload,
    too_long,
)

log = logging.getLogger("merkit.serve")

STATIC = Path(str(files("merkit.serve") / "static"))


class ErrorBody(BaseModel):
    """What every refused request gets back."""

    error: str = Field(description="What was wrong, in one line, naming the file or field")


class Limits(BaseModel):
    max_upload_mb: float
    max_duration_s: float


class PredictionOptions(BaseModel):
    """How this service computes an answer (``merkit serve --hop/--one-pass/--crnn-precision``)."""

    hop_s: float = Field(description="Seconds between the starts of a long track's windows")
    one_pass: bool = Field(
        description="Each second of a long track analysed once (false: every window on its own, "
        "as training computed a clip)"
    )
    crnn_precision: str | None = Field(
        description="Arithmetic of the CRNN taggers (null: as the model stored it)"
    )


class ModelInfo(BaseModel):
    """``GET /v1/model``."""

    name: str = Field(description="The model as the CLI names it: default, fast, or a folder")
    method: str
    summary: str = Field(description="One paragraph: what the model is and how well it scores")
    plain: str = Field(description="The same in plain words, for the page")
    mixed_below: float = Field(description="Top probability under which an answer is mixed")
    calibration_error: float | None = Field(
        None,
        description="Expected calibration error of the probabilities, measured on out-of-fold "
        "predictions (null when not measured)",
    )
    seconds_per_window: float = Field(
        description="Recent time to predict one window (the page's time estimate for long songs)"
    )
    labels: dict[str, str] = Field(description="Quadrant → plain words")
    manifest: dict[str, Any] = Field(description="The model directory's manifest.json")
    card: str | None = Field(description="MODEL_CARD.md (Markdown)")
    limits: Limits
    prediction: PredictionOptions


class Health(BaseModel):
    status: str
    model: str
    merkit_version: str


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "Empty upload",
        413: "Upload or audio too long",
        415: "Not multipart/form-data, or a file that is not audio",
        422: "Missing field, bad parameter, or audio that cannot be decoded",
        503: "Out of memory",
    }.items()
}


# ---------------------------------------------------------------------------------------------
# The model


def load_audio_model(path: Path | None, settings: ServeSettings | None = None) -> Predictor:
    """Load the model a worker serves, with ``settings``' prediction options (hop, one pass,
    CRNN precision); version warnings go to the log as one line each.

    Raises
    ------
    ModelError
        The model cannot be loaded, or needs feature tables (cannot predict from audio).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = load_model(
            path,
            hop_s=settings.hop_s if settings else None,
            exact_windows=settings.exact_windows if settings else None,
            crnn_precision=settings.crnn_precision if settings else None,
        )
    for warning in caught:
        log.warning("%s", warning.message)
    if not predictor.audio_only:
        raise ModelError(
            f"model {predictor.manifest.method!r} needs feature tables and cannot predict from "
            "audio; serve an audio-only model (e.g. svm-own)"
        )
    return predictor


def warm_up(predictor: Predictor) -> float:
    """One prediction on 2 s of noise, so the first request does not pay for compilation;
    then the time of one more (seconds per window, the page's first time estimate)."""
    sr = min(spec.sr or 16_000 for spec in predictor.manifest.inputs)
    y = 0.1 * np.random.default_rng(0).standard_normal(2 * sr).astype(np.float32)
    predictor.predict(y, sr)
    started = time.perf_counter()
    predictor.predict(y, sr)
    return time.perf_counter() - started


def plain_summary(predictor: Predictor) -> str:
    """What the model is and how good it is, in words a non-expert reads."""
    m = predictor.manifest
    good = (
        f" On songs it had not heard (cross-validated), it picked the right one of the four "
        f"moods for {100 * m.cv.accuracy:.0f} in 100."
        if m.cv and m.cv.accuracy is not None
        else ""
    )
    about = (
        "4QAED: 30-second previews of mostly Western popular music, each labelled with one of "
        "the four moods"
        if m.training.dataset == "4qaed"
        else m.training.dataset
    )
    return (
        f"The model learned from {m.training.n_songs} song clips ({about}).{good} A song is "
        f"heard in {m.window_s:.0f}-second pieces and their answers averaged. It hears lyrics only "
        "as sound, and music unlike its training songs may get a less certain answer."
    )


def model_summary(predictor: Predictor) -> str:
    m = predictor.manifest
    cv = (
        f"cross-validated macro F1 {100 * m.cv.f1:.1f} % ({m.cv.protocol})"
        if m.cv
        else "not cross-validated"
    )
    return (
        f"{m.method}: {m.method_summary or 'a merkit model'}. Trained on {m.training.n_songs} "
        f"songs of {m.training.dataset}; {cv}. Songs are cut into {m.window_s:g} s windows every "
        f"{predictor.hop_s:g} s and the window probabilities averaged."
    )


# ---------------------------------------------------------------------------------------------
# One request


def predict_upload(
    predictor: Predictor,
    upload: UploadFile,
    name: str,
    segments: bool,
    settings: ServeSettings,
) -> PredictionResult:
    """Save, check and predict one upload (runs in a worker thread).

    Raises
    ------
    UploadError
        With the status and message for the client.
    """
    with saved_upload(upload.file, name) as path:
        check_duration(path, name, settings.max_duration_s)
        try:
            result = predictor.predict(path, segments=segments)
        except MerkitError as exc:
            raise UploadError(422, rename(str(exc), path, name).splitlines()[0]) from None
    if result.duration_s > settings.max_duration_s:  # formats without a readable header
        raise UploadError(413, too_long(name, result.duration_s, settings.max_duration_s))
    return result.model_copy(update={"path": name})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _field(loc: tuple[Any, ...]) -> str:
    where = {"query": "query parameter", "body": "form field", "header": "header"}
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] in where:
        return f"{where[parts[0]]} '{'.'.join(parts[1:])}'"
    return "'" + ".".join(parts) + "'"


def _validation_message(request: Request, exc: RequestValidationError) -> tuple[int, str]:
    content_type = request.headers.get("content-type", "")
    if request.url.path == "/v1/predict" and not content_type.startswith("multipart/form-data"):
        sent = content_type.split(";", 1)[0] or "no content type"
        return 415, (
            f"the request body is {sent}; send the audio as multipart/form-data with the file "
            "in the field 'file' (curl -F file=@song.mp3)"
        )
    problems = []
    for error in exc.errors():
        field = _field(tuple(error.get("loc", ())))
        if error.get("type") == "missing":
            hint = " (the audio file)" if field == "form field 'file'" else ""
            problems.append(f"missing {field}{hint}")
        else:
            problems.append(f"{field}: {error.get('msg', 'invalid')}")
    return 422, "; ".join(problems) or "invalid request"


# ---------------------------------------------------------------------------------------------
# The app


def create_app(
    settings: ServeSettings | None = None, *, predictor: Predictor | None = None
) -> FastAPI:
    """The merkit service.

    Parameters
    ----------
    settings : ServeSettings, optional
        Model and limits (defaults: the shipped model, :class:`ServeSettings` defaults).
    predictor : Predictor, optional
        An already loaded model (used instead of ``settings.model``; tests share one).

    Returns
    -------
    FastAPI
        The model is loaded (and warmed up) when the app starts, once per process.
    """
    settings = settings or ServeSettings()
    state: dict[str, Any] = {"predictor": predictor}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state["predictor"] is None:
            state["predictor"] = await anyio.to_thread.run_sync(
                load_audio_model, settings.model, settings
            )
        state["limiter"] = anyio.CapacityLimiter(settings.max_concurrent)
        state["per_window"] = await anyio.to_thread.run_sync(warm_up, state["predictor"])
        log.info("merkit serve: model %s ready", state["predictor"].manifest.method)
        yield

    app = FastAPIOffline(
        title="merkit",
        version=__version__,
        summary="Music emotion recognition: which of Russell's four quadrants a song expresses.",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.add_middleware(BodySizeLimit, limit=settings.max_upload_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(*_validation_message(request, exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, multipart_reason(exc) or str(exc.detail))

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); the service goes on")

    def record_speed(result: PredictionResult, seconds: float) -> None:
        """A running mean of the time per window (the page's estimate for long songs)."""
        per_window = seconds / max(1, result.n_windows)
        state["per_window"] = 0.7 * state.get("per_window", per_window) + 0.3 * per_window

    @app.post(
        "/v1/predict",
        response_model=PredictionResult,
        responses=ERRORS,
        summary="Predict the quadrant of an uploaded song",
    )
    async def predict(
        file: Annotated[UploadFile, File(description="The song: any format merkit decodes")],
        segments: Annotated[
            bool, Query(description="Also return each window's answer (a timeline)")
        ] = False,
    ) -> JSONResponse:
        name = client_name(file.filename)
        started = time.perf_counter()
        try:
            check_part_type(file.content_type, name)
            result = await anyio.to_thread.run_sync(
                predict_upload,
                state["predictor"],
                file,
                name,
                segments,
                settings,
                limiter=state["limiter"],
            )
        except UploadError as exc:
            return _error(exc.status, exc.message)
        except MemoryError:
            return _error(503, f"out of memory while predicting '{name}'; try a shorter file")
        record_speed(result, time.perf_counter() - started)
        return JSONResponse(result.model_dump(mode="json"))

    @app.get("/v1/model", response_model=ModelInfo, summary="The model this service runs")
    async def model() -> ModelInfo:
        p: Predictor = state["predictor"]
        return ModelInfo(
            name=model_name(p.model_dir),
            method=p.manifest.method,
            summary=model_summary(p),
            plain=plain_summary(p),
            mixed_below=p.mixed_below,
            calibration_error=p.calibration.ece_after if p.calibration else None,
            seconds_per_window=round(state.get("per_window", 1.0), 3),
            labels={q: p.manifest.label_meanings.get(q, "") for q in p.labels},
            manifest=p.manifest.model_dump(mode="json"),
            card=p.card,
            limits=Limits(
                max_upload_mb=settings.max_upload_mb, max_duration_s=settings.max_duration_s
            ),
            prediction=PredictionOptions(
                hop_s=p.hop_s, one_pass=not p.exact_windows, crnn_precision=p.crnn_precision
            ),
        )

    @app.get("/healthz", response_model=Health, summary="Whether the service is up")
    async def healthz() -> Health:
        return Health(
            status="ok", model=model_name(state["predictor"].model_dir), merkit_version=__version__
        )

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def app_from_env() -> FastAPI:
    """The app with settings from ``MERKIT_SERVE_*`` (uvicorn's factory in each worker)."""
    return create_app(ServeSettings.from_env())


__all__ = ["ErrorBody", "ModelInfo", "app_from_env", "create_app", "predict_upload"]
