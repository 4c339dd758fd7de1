"""``merkit serve``: the HTTP API and web page (:mod:`merkit.serve`) under uvicorn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from merkit.commands import (
    CrnnPrecisionOption,
    ExactWindowsOption,
    HopOption,
    err_console,
    user_errors,
)
from merkit.core.errors import ConfigError, ModelError


def _check_host(host: str) -> None:
    """Refuse an address this machine cannot listen on, before anything says "serving on"."""
    import socket

    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.bind((address[0], 0, *address[2:]))  # any free port: only the address is tested
    except (OSError, UnicodeError, IndexError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ConfigError(
            f"--host {host!r}: not an address this machine can listen on ({reason}); use "
            "127.0.0.1 (this machine only) or 0.0.0.0 (every network interface)"
        ) from None


def _check_model(path: Path | None, *, trust: bool = False, hop: float | None = None) -> str:
    """Read the manifest before any worker starts: a bad model is one clear line, not a worker
    crash per process; a model folder is code, so an untrusted one is refused here
    (:mod:`merkit.product.trust`); ``hop`` must fit its window. Returns the method name."""
    from merkit.product.model_dir import read_manifest
    from merkit.product.predict import hop_within_window
    from merkit.product.registered import check_registered
    from merkit.product.shipped import require_model_weights, resolve_model_dir
    from merkit.product.trust import check_model_folder

    where = resolve_model_dir(path)
    note = check_model_folder(where, trust=trust)
    if note is not None:
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    manifest = read_manifest(where)
    check_registered(manifest, where / "manifest.json")
    hop_within_window(hop, manifest.window_s, "--hop")
    require_model_weights(where, name=str(path) if path is not None else where.name)
    if not manifest.audio_only:
        raise ModelError(
            f"model {manifest.method!r} needs feature tables and cannot predict from audio; "
            "serve an audio-only model (e.g. svm-own)"
        )
    return manifest.method


@user_errors
def serve(
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Model directory, or a shipped model: default (most accurate) or fast. A model "
            "directory is code (pickled Python): serve only folders you made or trust",
            envvar="MERKIT_SERVE_MODEL",
        ),
    ] = None,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="Serve a model folder merkit did not write on this machine (downloaded, shared "
            "or changed since): only one from a source you trust; it is remembered",
        ),
    ] = False,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (each loads the model once)")
    ] = 1,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest upload in MB", envvar="MERKIT_SERVE_MAX_UPLOAD_MB")
    ] = 50.0,
    max_duration: Annotated[
        float,
        typer.Option(help="Longest audio in seconds", envvar="MERKIT_SERVE_MAX_DURATION_S"),
    ] = 1200.0,
    max_concurrent: Annotated[
        int,
        typer.Option(
            help="Predictions running at once per worker", envvar="MERKIT_SERVE_MAX_CONCURRENT"
        ),
    ] = 2,
    hop: HopOption = None,
    exact_windows: ExactWindowsOption = None,
    crnn_precision: CrnnPrecisionOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the model over HTTP: POST /v1/predict (an audio upload → its quadrant as JSON),
    GET /v1/model, GET /healthz, the API docs at /docs and a web page at /.

    Listens on 127.0.0.1 unless --host says otherwise (use --host 0.0.0.0 to serve a network).
    """
    from merkit.product.predict import checked_hop, checked_precision
    from merkit.serve.settings import ServeSettings

    checked_hop(hop, "--hop")  # predict's words, before pydantic's
    checked_precision(crnn_precision, "--crnn-precision")
    try:
        settings = ServeSettings(
            model=model,
            max_upload_mb=max_upload_mb,
            max_duration_s=max_duration,
            max_concurrent=max_concurrent,
            hop_s=hop,
            exact_windows=exact_windows,
            crnn_precision=crnn_precision,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        name = {"max_duration_s": "max_duration"}.get(str(first["loc"][0]), str(first["loc"][0]))
        raise ConfigError(f"--{name.replace('_', '-')}: {first['msg']}") from None
    _check_host(host)
    method = _check_model(model, trust=trust, hop=hop)
    os.environ.update(settings.to_env())  # the workers build their app from these
    import uvicorn

    err_console.print(
        f"serving model [bold]{method}[/] on http://{host}:{port}/ (API docs: /docs); "
        "Ctrl-C stops it",
        highlight=False,
    )
    uvicorn.run(
        "merkit.serve.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
    )


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``merkit`` app."""
    app.command("serve")(serve)
