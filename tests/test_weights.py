"""``merkit models download`` / ``list`` and the one early error for missing weights.

Downloads go to a local HTTP server on 127.0.0.1 only (no other address is ever contacted): a
good file, a file with another checksum, a server error and a transfer cut short.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from conftest import PRETRAINED
from merkit.core.errors import ModelError
from merkit.transfer import weights
from merkit.transfer.weights import Checkpoint, download_checkpoints, install_checkpoints

PAYLOAD = bytes(range(256)) * 64  # 16 KiB standing in for a checkpoint
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/good.pth":
            self._send(PAYLOAD)
        elif self.path == "/other.pth":
            self._send(PAYLOAD[::-1])
        elif self.path == "/cut.pth":  # announces the whole file, sends half, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(500, "broken")

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: str) -> Checkpoint:
    """The registry holds one small checkpoint served by the local server; the pre-trained
    folder is empty; no proxy stands between us and 127.0.0.1."""
    checkpoint = Checkpoint("crnn_fake.pth", SHA, f"{server}/good.pth", "models/fake.pth", "test")
    monkeypatch.setattr(weights, "CHECKPOINTS", {checkpoint.file_name: checkpoint})
    monkeypatch.setenv("MERKIT_PRETRAINED", str(tmp_path / "pretrained"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    return checkpoint


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_saves_the_verified_file_and_keeps_it(fake: Checkpoint, tmp_path: Path) -> None:
    dest = tmp_path / "pretrained"
    seen: list[str] = []
    (path,) = download_checkpoints(on_file=lambda c, outcome: seen.append(outcome))
    assert path == dest / "crnn_fake.pth"
    assert path.read_bytes() == PAYLOAD
    assert _files(dest) == ["crnn_fake.pth"]
    assert weights.checkpoint_status(fake) == "ready"
    download_checkpoints(on_file=lambda c, outcome: seen.append(outcome))
    assert seen == ["downloaded", "present"]  # the second run fetches nothing


def test_a_file_with_another_checksum_is_not_saved(fake: Checkpoint, tmp_path: Path, server: str):
    with pytest.raises(ModelError, match=r"crnn_fake.pth downloaded from .*other.pth does not "):
        download_checkpoints(urls={"crnn_fake.pth": f"{server}/other.pth"})
    assert _files(tmp_path / "pretrained") == []


def test_a_server_error_names_the_file_and_keeps_what_was_there(
    fake: Checkpoint, tmp_path: Path, server: str
) -> None:
    dest = tmp_path / "pretrained"
    dest.mkdir()
    (dest / "crnn_fake.pth").write_bytes(b"the user's old file")
    assert weights.checkpoint_status(fake) == "damaged"
    with pytest.raises(ModelError, match=r"could not download crnn_fake.pth from .*: HTTP 500"):
        download_checkpoints(urls={"crnn_fake.pth": f"{server}/missing.pth"})
    assert _files(dest) == ["crnn_fake.pth"]
    assert (dest / "crnn_fake.pth").read_bytes() == b"the user's old file"


def test_an_interrupted_transfer_leaves_no_partial_file(
    fake: Checkpoint, tmp_path: Path, server: str
) -> None:
    with pytest.raises(ModelError, match=r"could not download crnn_fake.pth from .*cut.pth"):
        download_checkpoints(urls={"crnn_fake.pth": f"{server}/cut.pth"})
    assert _files(tmp_path / "pretrained") == []  # no checkpoint, no temporary file


def test_install_from_a_folder_checks_before_copying(fake: Checkpoint, tmp_path: Path) -> None:
    dest = tmp_path / "pretrained"
    source = tmp_path / "offline"
    (source / "models").mkdir(parents=True)
    with pytest.raises(ModelError, match=r"crnn_fake.pth not found in .*offline"):
        install_checkpoints(source)
    (source / "models" / "fake.pth").write_bytes(PAYLOAD[:-1])  # the upstream layout, damaged
    with pytest.raises(ModelError, match=r"fake.pth has SHA-256 .*expected " + SHA):
        install_checkpoints(source)
    assert _files(dest) == []
    (source / "models" / "fake.pth").write_bytes(PAYLOAD)
    (path,) = install_checkpoints(source)
    assert path.read_bytes() == PAYLOAD
    assert _files(dest) == ["crnn_fake.pth"]
    with pytest.raises(ModelError, match="not a folder"):
        install_checkpoints(tmp_path / "nowhere")


def test_the_registry_names_wons_three_crnns_with_their_pins() -> None:
    from merkit.transfer.pooled import WON_CHECKPOINTS

    assert {c.file_name: c.sha256 for c in weights.CHECKPOINTS.values()} == dict(WON_CHECKPOINTS)
    mtat = weights.CHECKPOINTS["crnn_mtat.pth"]
    assert mtat.url == (
        "https://raw.githubusercontent.com/minzwon/sota-music-tagging-models/master/"
        "models/mtat/crnn/best_model.pth"
    )


@pytest.mark.shared
def test_the_shared_copies_are_the_pinned_files() -> None:
    if not PRETRAINED.is_dir():
        pytest.skip(f"no pre-trained checkpoints at {PRETRAINED} (../shared beside the checkout)")
    for checkpoint in weights.CHECKPOINTS.values():
        found = weights.find_in_folder(checkpoint, PRETRAINED)
        assert found is not None and weights.file_sha256(found) == checkpoint.sha256


def test_models_commands(fake: Checkpoint, tmp_path: Path) -> None:
    from merkit.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    assert "crnn_fake.pth" in listed.output and "missing" in listed.output
    assert "fast" in listed.output
    source = tmp_path / "offline"
    source.mkdir()
    (source / "crnn_fake.pth").write_bytes(PAYLOAD)
    done = runner.invoke(app, ["models", "download", "--from", str(source)])
    assert done.exit_code == 0, done.output
    assert "crnn_fake.pth: installed" in done.output
    assert "ready" in runner.invoke(app, ["models", "list"]).output
    downloaded = runner.invoke(app, ["models", "download"])  # verified file there: no fetch
    assert "crnn_fake.pth: present" in downloaded.output


def test_predict_without_the_weights_fails_once_before_any_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from merkit.cli import app
    from merkit.product.model_dir import MANIFEST
    from merkit.product.shipped import shipped_model_dir

    if not (shipped_model_dir("default") / MANIFEST).is_file():
        pytest.skip("no shipped default model")
    monkeypatch.setenv("MERKIT_PRETRAINED", str(tmp_path / "empty"))
    library = tmp_path / "lib"
    library.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        sf.write(library / f"song{i}.wav", 0.1 * rng.standard_normal(16000 * 3), 16000)
    result = CliRunner().invoke(app, ["predict", str(library), "--model", "default"])
    assert result.exit_code == 1
    assert result.output.count("error:") == 1
    assert "failed:" not in result.output  # no file was tried
    assert "the model 'default' needs pre-trained checkpoints" in result.output
    assert "merkit models download" in result.output
    # a damaged file is named too, also before any work
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "crnn_msd.pth").write_bytes(b"not the published file")
    result = CliRunner().invoke(app, ["predict", str(library), "--model", "default"])
    assert result.output.count("error:") == 1
    assert "crnn_msd.pth not the published file" in result.output


def test_serve_and_train_without_the_weights_fail_once_before_any_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from merkit.cli import app

    monkeypatch.setenv("MERKIT_PRETRAINED", str(tmp_path / "empty"))
    runner = CliRunner()
    served = runner.invoke(app, ["serve", "--model", "default"])
    trained = runner.invoke(
        app, ["train", "--method", "fusion", "--dataset", "synthetic", "--out", str(tmp_path / "m")]
    )
    for result, who in ((served, "the model 'default'"), (trained, "method 'fusion'")):
        assert result.exit_code == 1
        assert result.output.count("error:") == 1
        assert f"{who} needs pre-trained checkpoints" in result.output
        assert "merkit models download" in result.output
    assert "serving" not in served.output
    assert "training" not in trained.output and not (tmp_path / "m").exists()
