"""The pre-trained checkpoints merkit can fetch: where each comes from, its SHA-256, and how it is
put into the folder merkit reads them from (``merkit models download``).

merkit ships no third-party weights. The default model's ``crnn-tags3`` input needs Won et al.'s
three CRNN music taggers (MIT licence, `sota-music-tagging-models
<https://github.com/minzwon/sota-music-tagging-models>`_), saved under merkit's names in
:func:`~merkit.transfer.pooled.pretrained_dir` (``$MERKIT_PRETRAINED``, default
``~/.cache/merkit/pretrained``). :func:`download_checkpoints` fetches them from their upstream URLs
with pooch, which streams each file to a temporary name beside its destination, checks the
SHA-256 and only then moves it into place: a failed, interrupted or wrong download leaves no file
under the checkpoint's name, and a file already there is replaced only by a verified one.
:func:`install_checkpoints` does the same from a local folder (offline machines).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from merkit.core.errors import ModelError
from merkit.transfer.pooled import WON_CHECKPOINTS, pretrained_dir

UPSTREAM = "https://raw.githubusercontent.com/minzwon/sota-music-tagging-models/master"
"""Won's repository, raw files of its default branch."""


@dataclass(frozen=True)
class Checkpoint:
    """A pre-trained weight file merkit can fetch.

    Attributes
    ----------
    file_name : str
        merkit's name for it in the pre-trained folder, e.g. ``"crnn_mtat.pth"``.
    sha256 : str
        Hex digest of the only file accepted under that name.
    url : str
        Where it is downloaded from.
    upstream_path : str
        Its path in the upstream repository (also looked for under ``--from DIR``).
    description : str
        One line for listings.
    """

    file_name: str
    sha256: str
    url: str
    upstream_path: str
    description: str


def _won(file_name: str, sha256: str) -> Checkpoint:
    dataset = file_name.removeprefix("crnn_").removesuffix(".pth")
    path = f"models/{dataset}/crnn/best_model.pth"
    names = {"mtat": "MagnaTagATune", "msd": "Million Song Dataset", "jamendo": "MTG-Jamendo"}
    return Checkpoint(
        file_name=file_name,
        sha256=sha256,
        url=f"{UPSTREAM}/{path}",
        upstream_path=path,
        description=f"Won et al.'s CRNN tagger trained on {names[dataset]} (MIT licence)",
    )


CHECKPOINTS: dict[str, Checkpoint] = {name: _won(name, sha) for name, sha in WON_CHECKPOINTS}
"""Every checkpoint ``merkit models download`` fetches, by file name."""

Status = Literal["ready", "missing", "damaged"]


def checkpoint_status(checkpoint: Checkpoint, folder: Path | None = None) -> Status:
    """``ready`` (present with the pinned SHA-256), ``missing`` or ``damaged`` (another file)."""
    path = (folder or pretrained_dir()) / checkpoint.file_name
    if not path.is_file():
        return "missing"
    return "ready" if file_sha256(path) == checkpoint.sha256 else "damaged"


def not_ready(pins: Mapping[str, str], folder: Path | None = None) -> dict[str, Status]:
    """The checkpoints of ``pins`` (file name → SHA-256) that are not ready, with their status
    (checksums are memoised per file, so asking again is cheap)."""
    folder = folder or pretrained_dir()
    out: dict[str, Status] = {}
    for name, sha256 in pins.items():
        path = folder / name
        if not path.is_file():
            out[name] = "missing"
        elif file_sha256(path) != sha256.lower():
            out[name] = "damaged"
    return out


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file (memoised per path, size and modification time)."""
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _select(names: Sequence[str] | None) -> list[Checkpoint]:
    if not names:
        return list(CHECKPOINTS.values())
    unknown = [n for n in names if n not in CHECKPOINTS]
    if unknown:
        raise ModelError(
            f"no downloadable checkpoint named {', '.join(unknown)} "
            f"(known: {', '.join(CHECKPOINTS)})"
        )
    return [CHECKPOINTS[n] for n in names]


def download_checkpoints(
    names: Sequence[str] | None = None,
    *,
    dest: Path | None = None,
    urls: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    on_file: Callable[[Checkpoint, str], None] | None = None,
) -> list[Path]:
    """Fetch checkpoints from their upstream URLs into ``dest``, each checked by SHA-256.

    Parameters
    ----------
    names : sequence of str, optional
        File names (keys of :data:`CHECKPOINTS`); all of them by default.
    dest : path, optional
        Folder to save them in; :func:`~merkit.transfer.pooled.pretrained_dir` by default.
    urls : mapping, optional
        Another URL per file name (a mirror; the tests' local server).
    timeout : float
        Seconds without data before a download is given up.
    on_file : callable, optional
        ``on_file(checkpoint, outcome)`` after each file, ``outcome`` ``"present"`` (already
        there and verified, nothing fetched) or ``"downloaded"``.

    Returns
    -------
    list of Path
        The verified files, in the order asked for.

    Raises
    ------
    ModelError
        A download failed (no connection, an HTTP error, an interrupted transfer) or brought a
        file whose SHA-256 differs; one line naming the file and URL. Nothing is left under the
        checkpoint's name by a failed download, and a file already there is kept.
    """
    import pooch
    import requests

    dest = Path(dest) if dest is not None else pretrained_dir()
    saved = []
    for checkpoint in _select(names):
        path = dest / checkpoint.file_name
        if checkpoint_status(checkpoint, dest) == "ready":
            saved.append(path)
            if on_file:
                on_file(checkpoint, "present")
            continue
        url = (urls or {}).get(checkpoint.file_name, checkpoint.url)
        try:
            _make_dir(dest)
            pooch.retrieve(
                url,
                known_hash=f"sha256:{checkpoint.sha256}",
                fname=checkpoint.file_name,
                path=dest,
                downloader=pooch.HTTPDownloader(timeout=timeout),
            )
        except ValueError:  # pooch: the downloaded file's hash differs (it was deleted)
            raise ModelError(
                f"{checkpoint.file_name} downloaded from {url} does not have the SHA-256 "
                f"{checkpoint.sha256}: a different or damaged file, not saved"
            ) from None
        except requests.exceptions.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "error"
            raise ModelError(
                f"could not download {checkpoint.file_name} from {url}: HTTP {status}"
            ) from None
        except requests.exceptions.RequestException as exc:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ModelError(
                f"could not download {checkpoint.file_name} from {url} ({type(exc).__name__}: "
                f"{reason}); nothing was saved, run the command again, or install the files "
                "from a folder with --from DIR"
            ) from None
        saved.append(path)
        if on_file:
            on_file(checkpoint, "downloaded")
    return saved


def _make_dir(dest: Path) -> None:
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the pre-trained folder {dest}: {exc.strerror}") from None


def find_in_folder(checkpoint: Checkpoint, source: Path) -> Path | None:
    """Where ``checkpoint`` lies in ``source``: under merkit's name (``crnn_mtat.pth``), or as in
    a copy of the upstream repository (``models/mtat/crnn/best_model.pth``, with or without the
    leading ``models/``)."""
    upstream = Path(checkpoint.upstream_path)
    for candidate in (
        source / checkpoint.file_name,
        source / upstream,
        source / upstream.relative_to("models"),
    ):
        if candidate.is_file():
            return candidate
    return None


def install_checkpoints(
    source: Path,
    names: Sequence[str] | None = None,
    *,
    dest: Path | None = None,
    on_file: Callable[[Checkpoint, str], None] | None = None,
) -> list[Path]:
    """Copy checkpoints from a local folder into ``dest`` (offline machines).

    Every file is found and its SHA-256 checked before anything is copied; each copy is written
    to a temporary file beside its destination and renamed into place.

    Parameters
    ----------
    source : path
        A folder holding the files under merkit's names or the upstream layout.
    names, dest, on_file
        As for :func:`download_checkpoints` (``outcome`` ``"present"`` or ``"installed"``).

    Raises
    ------
    ModelError
        ``source`` is not a folder, a file is missing there, or has another SHA-256; one line
        naming it. Nothing is copied then.
    """
    source = Path(source).expanduser()
    if not source.is_dir():
        raise ModelError(f"--from {source}: not a folder")
    dest = Path(dest) if dest is not None else pretrained_dir()
    plan: list[tuple[Checkpoint, Path]] = []
    for checkpoint in _select(names):
        found = find_in_folder(checkpoint, source)
        if found is None:
            raise ModelError(
                f"{checkpoint.file_name} not found in {source} (looked for {checkpoint.file_name}"
                f" and {checkpoint.upstream_path}); nothing was installed"
            )
        actual = file_sha256(found)
        if actual != checkpoint.sha256:
            raise ModelError(
                f"{found} has SHA-256 {actual}, expected {checkpoint.sha256} for "
                f"{checkpoint.file_name}: a different or damaged file; nothing was installed"
            )
        plan.append((checkpoint, found))
    saved = []
    for checkpoint, found in plan:
        target = dest / checkpoint.file_name
        if checkpoint_status(checkpoint, dest) == "ready":
            outcome = "present"
        else:
            _make_dir(dest)
            _copy_atomic(found, target)
            outcome = "installed"
        saved.append(target)
        if on_file:
            on_file(checkpoint, outcome)
    return saved


def _copy_atomic(source: Path, target: Path) -> None:
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(handle)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ModelError(f"cannot write {target}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = [
    "CHECKPOINTS",
    "UPSTREAM",
    "Checkpoint",
    "checkpoint_status",
    "download_checkpoints",
    "file_sha256",
    "find_in_folder",
    "install_checkpoints",
    "not_ready",
]
