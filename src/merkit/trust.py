"""Which model folders merkit loads: a model folder is code.

A model directory's ``estimator.joblib`` is a pickle: loading it runs whatever Python the person
who wrote the file put there, with your permissions. Its SHA-256 in ``manifest.json`` only
catches accidents (whoever changes the one can change the other). So:

- **Shipped models** (``default``, ``fast``) are checked against SHA-256 digests held in
  merkit's code (:data:`merkit.product.shipped.SHIPPED_SHA256`), not beside the files: a
  changed file is refused.
- **Model folders merkit wrote here** (``merkit train``,
  :func:`merkit.product.export.save_model`) are recorded in the trust list
  (:func:`trust_file`) by the SHA-256 of their ``manifest.json``, which pins the estimator
  file's SHA-256 in turn. Copies and moves stay trusted; a folder changed since (a swapped
  estimator with its checksum updated) is not.
- **Any other folder** (downloaded, shared, changed) is refused by ``merkit predict`` and
  ``merkit serve`` until the user passes ``--trust`` after deciding its source is trustworthy;
  that records it. Every non-shipped folder that is loaded is named with a one-line note.

Not defended: someone who can write to your home folder (the trust list), to merkit's installed
files or to the Python environment can run code anyway. The Python API
(:func:`merkit.load_model`) loads the folder it is given, like :func:`joblib.load`: a script
chooses its files.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from merkit.core.errors import ModelError

TRUST_FILE_VARIABLE = "MERKIT_TRUST_FILE"
"""Environment variable naming the trust list (default ``~/.config/merkit/trusted-models.json``)."""

CODE_WARNING = (
    "a model folder is code: loading it runs the Python objects pickled inside it, with your "
    "permissions. Load only folders you made or that come from a source you trust."
)
"""The plain-language warning of the ``--model`` help, the docs and the model card."""


def trust_file() -> Path:
    """Where the trust list lives: ``$MERKIT_TRUST_FILE``, else ``$XDG_CONFIG_HOME/merkit`` (or
    ``~/.config/merkit``) ``/trusted-models.json``."""
    named = os.environ.get(TRUST_FILE_VARIABLE)
    if named:
        return Path(named).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "merkit" / "trusted-models.json"


def model_digest(path: Path | str) -> str:
    """SHA-256 of a model folder's ``manifest.json`` (which holds the estimator's SHA-256)."""
    from merkit.product.model_dir import MANIFEST

    try:
        return hashlib.sha256((Path(path) / MANIFEST).read_bytes()).hexdigest()
    except OSError as exc:
        raise ModelError(f"cannot read {Path(path) / MANIFEST}: {exc.strerror or exc}") from None


def _read(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"the trust list {file} cannot be read ({exc}); fix or delete it "
            f"(${TRUST_FILE_VARIABLE} names another)"
        ) from None
    models = data.get("models") if isinstance(data, dict) else None
    return models if isinstance(models, dict) else {}


@contextlib.contextmanager
def _locked(file: Path) -> Iterator[None]:
    """Serialise read-modify-write of the trust list between processes (POSIX lock)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file.with_name(file.name + ".lock"), "a") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no lock; a lost entry only means asking for --trust
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def trusted(path: Path | str) -> dict[str, Any] | None:
    """The trust list's record of this model folder's exact content, or None."""
    record = _read(trust_file()).get(model_digest(path))
    return record if isinstance(record, dict) else None


def record_trust(path: Path | str, how: str) -> None:
    """Add the model folder at ``path``, as it is now, to the trust list (``how``: who said so)."""
    file = trust_file()
    digest = model_digest(path)
    with _locked(file):
        models = _read(file)
        models[digest] = {
            "path": str(Path(path).resolve()),
            "how": how,
            "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".trusted-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump({"models": models}, out, indent=1)
                out.write("\n")
            os.replace(tmp, file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def check_model_folder(path: Path, *, trust: bool = False) -> str | None:
    """Decide whether the CLI may load the model folder ``path`` (see the module docstring).

    Returns
    -------
    str or None
        None for a shipped model (its files were checked against merkit's digests); else the
        one-line note to print, naming the folder and why it is loaded.

    Raises
    ------
    ModelError
        A shipped model whose files were changed, or a folder neither merkit wrote here nor the
        user trusted (without ``trust``), with what to do.
    """
    from merkit.product.model_dir import read_manifest
    from merkit.product.shipped import shipped_name, verify_shipped

    read_manifest(path)  # a missing folder or manifest is said as such, before any trust
    name = shipped_name(path)
    if name is not None:
        verify_shipped(name)
        return None
    if trust:
        record_trust(path, "--trust")
        return f"loading model folder {path}, trusted with --trust: {CODE_WARNING}"
    record = trusted(path)
    if record is None:
        raise ModelError(
            f"refusing to load model folder {path}: merkit did not write it on this machine and "
            f"you have not trusted it (or it changed since). {CODE_WARNING} If it comes from a "
            "source you trust, run again with --trust (recorded in "
            f"{trust_file()})"
        )
    how = "written by merkit" if record.get("how") == "merkit" else "trusted by you"
    return f"loading model folder {path} ({how} on {str(record.get('when', '?'))[:10]}): " + (
        "a model folder is code; load only folders you made or trust"
    )


__all__ = [
    "CODE_WARNING",
    "TRUST_FILE_VARIABLE",
    "check_model_folder",
    "model_digest",
    "record_trust",
    "trust_file",
    "trusted",
]
