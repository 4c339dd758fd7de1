"""merkit serve through FastAPI's test client: every endpoint, every bad input, no leftovers.

The shipped model answers; clips are generated here (a few seconds each).
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import merkit
import merkit.product.predict
from conftest import needs_crnn_weights
from merkit.cli import app as cli_app
from merkit.core.errors import ConfigError
from merkit.product.predict import Predictor, load_model
from merkit.serve.app import STATIC, create_app
from merkit.serve.settings import ServeSettings
from merkit.serve.upload import client_name
from product_helpers import logreg_model_dir, register_test_methods

SR = 22_050

register_test_methods()  # the cheap model of test_prediction_options_reach_the_served_model


def clip(seconds: float, freq: float = 440.0, fmt: str = "WAV") -> bytes:
    """A sine tone with a tremolo, encoded in memory (``fmt``: a soundfile format)."""
    t = np.arange(int(SR * seconds)) / SR
    y = 0.3 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    buffer = io.BytesIO()
    sf.write(buffer, y, SR, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return load_model()


@pytest.fixture(scope="module")
def client(predictor: Predictor) -> Iterator[TestClient]:
    with TestClient(create_app(ServeSettings(), predictor=predictor)) as test_client:
        yield test_client


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary files of the service go here, so a test can see what is left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def upload(name: str, data: bytes, content_type: str = "audio/wav") -> dict:
    return {"file": (name, data, content_type)}


def assert_refused(response, status: int, *phrases: str) -> str:
    """A JSON ``{"error": ...}`` with ``status``, naming the problem, and no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    message = body["error"]
    for phrase in phrases:
        assert phrase in message, message
    assert "Traceback" not in response.text and "merkit-serve-" not in message
    return message


# ---- endpoints -------------------------------------------------------------------------------


@needs_crnn_weights
def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {
        "status": "ok",
        "model": "default",  # as the CLI names it (--model default), not the method
        "merkit_version": merkit.__version__,
    }


@needs_crnn_weights
def test_model_gives_manifest_summary_card_and_limits(client: TestClient) -> None:
    info = client.get("/v1/model").json()
    assert info["method"] == "fusion"
    assert info["manifest"]["window_s"] == 30.1
    assert info["labels"] == {
        "Q1": "happy/excited",
        "Q2": "angry/tense",
        "Q3": "sad/melancholic",
        "Q4": "calm/serene",
    }
    # The shipped default model's 10x10 macro F1 (4qaed_fusion_default.md), as the summary says.
    assert round(100 * info["manifest"]["cv"]["f1"], 2) == 76.17
    assert "macro F1 76.2 %" in info["summary"] and "900 songs" in info["summary"]
    assert info["card"].startswith("# merkit model card")
    assert info["name"] == "default"
    # plain words for the page: no method names, no jargon
    accuracy = round(100 * info["manifest"]["cv"]["accuracy"])
    assert f"right one of the four moods for {accuracy} in 100" in info["plain"]
    for jargon in ("fusion", "F1", "fold", "stacking", "random_state", "calibrat", "SVM"):
        assert jargon not in info["plain"]
    assert 0 < info["mixed_below"] < 1 and info["seconds_per_window"] > 0
    assert info["limits"] == {"max_upload_mb": 50.0, "max_duration_s": 1200.0}


def test_predict_gives_exactly_what_merkit_predict_json_gives(
    client: TestClient,
    predictor: Predictor,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "song.wav").write_bytes(clip(4.0))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        merkit.product.predict, "load_model", lambda path=None, **options: predictor
    )
    cli = CliRunner().invoke(cli_app, ["predict", "song.wav", "--format", "json", "--quiet"])
    assert cli.exit_code == 0, cli.output
    expected = json.loads(cli.stdout)
    assert len(expected) == 1

    served = client.post("/v1/predict", files=upload("song.wav", clip(4.0)))
    assert served.status_code == 200
    assert served.json() == expected[0]
    assert served.json()["path"] == "song.wav"
    assert sum(served.json()["probabilities"].values()) == pytest.approx(1.0)


def test_predict_mp3_with_a_timeline(client: TestClient) -> None:
    response = client.post(
        "/v1/predict",
        files=upload("long.mp3", clip(50.0, fmt="MP3"), "audio/mpeg"),
        params={"segments": "true"},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["duration_s"] == pytest.approx(50.0, abs=0.1)
    # 30.1 s windows every 15.05 s: [0, 30.1], [15.05, 45.15], and one ending at the track's end
    starts = [seg["start_s"] for seg in result["segments"]]
    assert starts == pytest.approx([0.0, 15.05, result["duration_s"] - 30.1], abs=0.01)
    assert result["n_windows"] == 3
    without = client.post("/v1/predict", files=upload("long.mp3", clip(50.0, fmt="MP3")))
    assert without.json()["segments"] is None


def test_unknown_path_is_a_json_404(client: TestClient) -> None:
    assert_refused(client.get("/v2/nothing"), 404, "Not Found")


# ---- bad input -------------------------------------------------------------------------------


def test_every_bad_input_is_a_4xx_naming_it_and_the_service_goes_on(
    client: TestClient, private_tmp: Path
) -> None:
    mp3 = clip(5.0, fmt="MP3")
    cases = [
        (upload("empty.mp3", b"", "audio/mpeg"), 400, ["'empty.mp3'", "empty (0 bytes)"]),
        (upload("notes.mp3", b"hello, not audio\n" * 20), 415, ["'notes.mp3'", "text file"]),
        (
            upload("noise.wav", bytes(range(256)) * 40),
            422,
            ["'noise.wav'", "not a recognised audio format"],
        ),
        (
            upload("cut.mp3", mp3[: len(mp3) // 2], "audio/mpeg"),
            422,
            ["'cut.mp3'", "truncated", "header says 5.0 s"],
        ),
        (upload("blip.wav", clip(0.5)), 422, ["'blip.wav'", "shorter than one second"]),
        (
            upload("song.wav", clip(2.0), "text/plain"),
            415,
            ["'song.wav' is not an audio file (it looks like text)", "MP3, WAV"],
        ),
        ({"other": ("song.wav", clip(2.0), "audio/wav")}, 422, ["missing form field 'file'"]),
    ]
    for files, status, phrases in cases:
        assert_refused(client.post("/v1/predict", files=files), status, *phrases)
    assert_refused(client.post("/v1/predict", json={"file": "song.wav"}), 415, "application/json")
    assert_refused(
        client.post("/v1/predict", content=clip(2.0), headers={"content-type": "audio/wav"}),
        415,
        "audio/wav",
        "multipart/form-data",
    )
    assert_refused(
        client.post("/v1/predict", files=upload("a.wav", clip(2.0)), params={"segments": "hm"}),
        422,
        "query parameter 'segments'",
    )
    # still serving, and nothing left in the temporary folder
    assert client.post("/v1/predict", files=upload("ok.wav", clip(2.0))).status_code == 200
    assert list(private_tmp.iterdir()) == []


def test_oversized_upload_is_refused_before_it_is_stored(
    predictor: Predictor, private_tmp: Path
) -> None:
    settings = ServeSettings(max_upload_mb=0.2)
    with TestClient(create_app(settings, predictor=predictor)) as small:
        big = clip(6.0)  # ~265 kB of 16-bit wav
        assert_refused(small.post("/v1/predict", files=upload("big.wav", big)), 413, "0.2 MB")

        # without a Content-Length (chunked), it is counted as it arrives
        def chunks() -> Iterator[bytes]:
            yield b"--x\r\nContent-Disposition: form-data; name=file; filename=big.wav\r\n\r\n"
            for _ in range(40):
                yield b"\0" * 10_000

        chunked = small.post(
            "/v1/predict",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=x"},
        )
        assert_refused(chunked, 413, "0.2 MB")
        assert small.post("/v1/predict", files=upload("ok.wav", clip(2.0))).status_code == 200
    assert list(private_tmp.iterdir()) == []


def test_audio_longer_than_the_cap_is_refused(predictor: Predictor) -> None:
    with TestClient(create_app(ServeSettings(max_duration_s=3), predictor=predictor)) as short:
        assert_refused(
            short.post("/v1/predict", files=upload("four.wav", clip(4.0))),
            413,
            "'four.wav' is 4.0 s long",
            "at most 3 s",
        )
        assert short.post("/v1/predict", files=upload("two.wav", clip(2.0))).status_code == 200


def test_an_unexpected_fault_is_a_json_500_without_traceback(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch, private_tmp: Path
) -> None:
    app = create_app(ServeSettings(), predictor=predictor)
    with TestClient(app, raise_server_exceptions=False) as faulty:

        def explode(*args, **kwargs):
            raise RuntimeError("secret internal detail")

        monkeypatch.setattr(predictor, "predict", explode)
        response = faulty.post("/v1/predict", files=upload("a.wav", clip(2.0)))
        message = assert_refused(response, 500, "internal error (RuntimeError)")
        assert "secret" not in message
        monkeypatch.undo()
        assert faulty.post("/v1/predict", files=upload("a.wav", clip(2.0))).status_code == 200
    assert list(private_tmp.iterdir()) == []


# ---- docs and page ---------------------------------------------------------------------------


def test_docs_and_schema_are_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs").text
    scripts = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert scripts and all(s.startswith("/") for s in scripts), scripts
    for asset in scripts:
        assert client.get(asset).status_code == 200, asset
    schema = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/model", "/healthz"} <= set(schema["paths"])
    assert "413" in schema["paths"]["/v1/predict"]["post"]["responses"]


def test_page_and_its_files_are_served_and_load_nothing_from_outside(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and '<svg id="plane"' in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    for path in STATIC.iterdir():
        text = path.read_text()
        urls = re.findall(r"https?://[^\s\"')]+", text)
        assert urls in ([], ["http://www.w3.org/2000/svg"]), (path.name, urls)


# ---- pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\music\\my song.mp3", "my song.mp3"),
        ("a\x00b\nc.wav", "a_b_c.wav"),
        (None, "upload"),
        ("..", "upload"),
    ],
)
def test_client_name_keeps_a_safe_base_name(given: str | None, safe: str) -> None:
    assert client_name(given) == safe


def test_settings_from_environment() -> None:
    settings = ServeSettings.from_env(
        {"MERKIT_SERVE_MAX_UPLOAD_MB": "5", "MERKIT_SERVE_MODEL": "/m", "OTHER": "x"}
    )
    assert settings.max_upload_bytes == 5_000_000 and settings.model == Path("/m")
    assert ServeSettings.from_env(settings.to_env()) == settings
    options = ServeSettings(hop_s=30.1, exact_windows=False, crnn_precision="winograd")
    assert ServeSettings.from_env(options.to_env()) == options  # the workers get the options
    assert ServeSettings.from_env(ServeSettings().to_env()).exact_windows is None
    with pytest.raises(ConfigError, match="MERKIT_SERVE_HOP_S='0.5'"):
        ServeSettings.from_env({"MERKIT_SERVE_HOP_S": "0.5"})
    with pytest.raises(ConfigError, match="MERKIT_SERVE_MAX_DURATION_S='-1'"):
        ServeSettings.from_env({"MERKIT_SERVE_MAX_DURATION_S": "-1"})


def test_serve_refuses_a_missing_model_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--model", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_serve_refuses_a_bad_limit_naming_the_option() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--max-upload-mb", "0"])
    assert result.exit_code == 1
    assert "--max-upload-mb" in result.output and "greater than 0" in result.output


def test_prediction_options_reach_the_served_model(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """--hop and --one-pass, handed to the worker as settings, are the options its model runs
    with, reported by /v1/model, and change the windows as in ``merkit predict``."""
    model_dir = logreg_model_dir(tmp_path_factory)  # 3 s windows every 1.5 s
    audio = clip(7.0)
    answers = {}
    for hop in (None, 2.0):
        settings = ServeSettings(model=model_dir, hop_s=hop, exact_windows=hop is None)
        with TestClient(create_app(settings)) as served:
            info = served.get("/v1/model").json()
            assert info["prediction"] == {
                "hop_s": 1.5 if hop is None else 2.0,
                "one_pass": hop is not None,
                "crnn_precision": None,
            }
            assert f"every {info['prediction']['hop_s']:g} s" in info["summary"]
            response = served.post("/v1/predict", files=upload("tone.wav", audio))
            assert response.status_code == 200, response.text
            answers[hop] = response.json()
    # 7 s: windows start at 0, 1.5, 3, 4 (the last ends at the end) vs 0, 2, 4
    assert (answers[None]["n_windows"], answers[2.0]["n_windows"]) == (4, 3)
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    path.write_bytes(audio)
    direct = load_model(model_dir, hop_s=2.0, exact_windows=False).predict(path)
    assert answers[2.0]["probabilities"] == pytest.approx(direct.probabilities, abs=1e-6)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--hop", "0.5"], "--hop (0.5 s) is below 1 s"),
        (["--hop", "40"], "--hop (40 s) is longer than the model's 30.1 s window"),
        (["--crnn-precision", "fp8"], "--crnn-precision must be one of float32, bf16, winograd"),
    ],
)
def test_serve_refuses_bad_prediction_options_naming_them(args: list[str], words: str) -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--model", "default", *args])
    assert result.exit_code == 1, result.output
    assert words in " ".join(result.output.split()) and "Traceback" not in result.output
