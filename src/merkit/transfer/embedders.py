"""Embeddings from a frozen pre-trained network as scikit-learn transformers, cached per row.

:class:`CRNNEmbedding` (Won's CRNN on :func:`~merkit.transfer.won_crnn.won_logmel` inputs) and
:class:`ArtistEmbedding` (Park's encoder on :func:`~merkit.transfer.artist_cnn.artist_logmel_chunks`
inputs) are stateless: ``fit`` only checks the weights file, ``transform`` runs the network in eval
mode. Each row's embedding is stored in merkit's on-disk cache under a key made of the row's bytes,
the weight file's SHA-256 and the output settings, so cross-validation computes every song once
however many folds and methods use it, and another checkpoint never reuses a stale value. The
network itself is loaded once per process (per weight file content).

Because the network is frozen and in eval mode (batch norms use their stored statistics, dropout is
off), a cached embedding equals what the network would compute in any epoch: training a head on the
cached rows is the same computation as training it behind the frozen network.
"""

from __future__ import annotations

import contextlib
import hashlib
import weakref
from functools import lru_cache
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from merkit.core.errors import ConfigError, DataError
from merkit.representations.cache import FeatureCache, key_for
from merkit.training.runtime import cpu_has_native_bf16
from merkit.transfer.checkpoints import check_weights_file, file_sha256

_MEMO: dict[str, np.ndarray] = {}
"""Process-wide copy of the embeddings served so far (key → vector)."""
_MEMO_LIMIT = 200_000


@lru_cache(maxsize=4)
def _network(family: str, path: str, sha256: str) -> torch.nn.Module:
    """The frozen network of ``family`` from ``path`` (whose content hashes to ``sha256``)."""
    if family == "crnn":
        from merkit.transfer.won_crnn import load_won_crnn

        model = load_won_crnn(path, sha256=sha256)
    else:
        from merkit.transfer.artist_cnn import load_artist_encoder

        model = load_artist_encoder(path, sha256=sha256)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


CRNN_PRECISIONS: tuple[str, ...] = ("float32", "bf16", "winograd")
"""The values of :class:`CRNNEmbedding`'s ``precision`` (the conv blocks' arithmetic)."""

_FUSED: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, Any]] = weakref.WeakKeyDictionary()


def _fused_blocks(model: torch.nn.Module, precision: str = "float32") -> Any:
    """The frozen CRNN's conv blocks on oneDNN (:func:`~merkit.transfer.won_crnn.
    inference_conv_blocks`) in ``precision``, built once per loaded network; ``None`` without
    oneDNN. ``bf16`` falls back to float32 on a CPU without native bfloat16 (where bfloat16 would
    be emulated, slowly): outputs within about 1e-2 of what a bfloat16 CPU gives. ``winograd``:
    float32 Winograd convolutions (:func:`~merkit.transfer.won_crnn.winograd_conv_blocks`),
    the oneDNN float32 blocks where this torch has no NNPACK. Only for the
    networks :func:`_network` loads, whose weights never change."""
    from merkit.transfer.won_crnn import inference_conv_blocks, winograd_conv_blocks

    if precision == "bf16" and not cpu_has_native_bf16():
        precision = "float32"
    built = _FUSED.setdefault(model, {})
    if precision not in built:
        layers = (model.layer1, model.layer2, model.layer3, model.layer4)  # type: ignore[attr-defined]
        blocks = winograd_conv_blocks(layers) if precision == "winograd" else None
        if blocks is None:  # float32, bf16, or winograd where this torch has no NNPACK
            dtype = torch.bfloat16 if precision == "bf16" else torch.float32
            blocks = inference_conv_blocks(layers, dtype)
        built[precision] = blocks
    return built[precision]


def row_digest(row: np.ndarray) -> str:
    """Content key of one input row (its float32 bytes and shape)."""
    row = np.ascontiguousarray(row, dtype=np.float32)
    digest = hashlib.blake2b(row.tobytes(), digest_size=20)
    digest.update(repr(row.shape).encode())
    return digest.hexdigest()


class _Embedding(TransformerMixin, BaseEstimator):
    """Shared machinery; subclasses set :attr:`family` and :meth:`_forward`."""

    family: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    row_ndim: ClassVar[int] = 2

    def _settings(self) -> dict[str, Any]:
        return {}

    def _forward(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _forward_all(
        self, model: torch.nn.Module, batch: torch.Tensor
    ) -> dict[tuple[tuple[str, Any], ...], torch.Tensor]:
        """Outputs of one forward pass keyed by their settings (here: just the one asked for)."""
        return {tuple(self._settings().items()): self._forward(model, batch)}

    def _model(self) -> tuple[torch.nn.Module, str]:
        path = check_weights_file(self.weights, sha256=self.sha256, what=self._what())
        sha = file_sha256(path)
        return _network(self.family, str(path.resolve()), sha), sha

    def _what(self) -> str:
        return f"{self.family} weights"

    def validate_settings(self) -> None:
        """Check the settings and the weights file before any work (``resolve_method`` calls
        this, :class:`~merkit.core.protocols.ValidatesSettings`): a wrong path or checksum
        fails now, with the file named."""
        check_weights_file(self.weights, sha256=self.sha256, what=self._what())

    def fit(self, X: Any, y: Any = None) -> _Embedding:
        """Check the weights file (nothing is learnt)."""
        self.validate_settings()
        self.weights_sha256_ = file_sha256(check_weights_file(self.weights, what=self._what()))
        return self

    def _embed_rows(self, rows: np.ndarray) -> np.ndarray:
        """Embeddings of ``rows`` (``(n, *row_shape)``), through the memo and the disk cache."""
        model, sha = self._model()
        if not self.cache:
            return self._compute_rows(model, rows)
        cache = FeatureCache()
        settings = {"weights_sha256": sha, **self._settings()}
        # Each row hashed once (its sibling outputs' keys reuse the digest).
        digests = [row_digest(row) for row in rows]
        keys = [key_for(d, f"{self.family}-embedding", settings, self.version) for d in digests]
        found: dict[int, np.ndarray] = {}
        for i, key in enumerate(keys):
            value = _MEMO.get(key)
            if value is None:
                value = cache.get(key)
            if value is not None:
                found[i] = value
        todo = [i for i in range(len(rows)) if i not in found]

        def store(name: tuple[tuple[str, Any], ...], index: list[int], out: np.ndarray) -> None:
            # Sibling outputs of the same pass are stored too (one pass serves all).
            named = {**settings, **dict(name)}
            for i, vector in zip(index, out, strict=True):
                cache.put(
                    key_for(digests[i], f"{self.family}-embedding", named, self.version), vector
                )
                if named == settings:
                    found[i] = vector

        self._run_batches(model, rows, todo, store)
        if len(_MEMO) > _MEMO_LIMIT:
            _MEMO.clear()
        for i, key in enumerate(keys):
            _MEMO[key] = found[i]
        return np.stack([found[i] for i in range(len(rows))]).astype(np.float32)

    def _compute_rows(self, model: torch.nn.Module, rows: np.ndarray) -> np.ndarray:
        """The embeddings of ``rows`` computed now (``cache=False``: a prediction service sees
        each input once, and a repeated one must cost what it costs). No row is hashed: the keys
        served only the memo and the disk cache (hashing the three taggers' rows took 9.9 ms of
        a 0.33 s prediction of a 30 s clip in a cProfile on the Xeon)."""
        found: dict[int, np.ndarray] = {}
        settings = self._settings()

        def store(name: tuple[tuple[str, Any], ...], index: list[int], out: np.ndarray) -> None:
            if {**settings, **dict(name)} == settings:
                found.update(zip(index, out, strict=True))

        self._run_batches(model, rows, list(range(len(rows))), store)
        return np.stack([found[i] for i in range(len(rows))]).astype(np.float32)

    def _run_batches(
        self,
        model: torch.nn.Module,
        rows: np.ndarray,
        todo: list[int],
        store: Any,
    ) -> None:
        """Run the network on ``rows[todo]`` in batches, calling ``store(settings, index,
        outputs)`` for each output of each batch (float32 numpy rows)."""
        threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(int(self.num_threads))
        try:
            with torch.inference_mode():
                for start in range(0, len(todo), self.batch_size):
                    index = todo[start : start + self.batch_size]
                    batch = torch.from_numpy(np.ascontiguousarray(rows[index], dtype=np.float32))
                    for name, out in self._forward_all(model, batch).items():
                        store(name, index, out.numpy().astype(np.float32))
        finally:
            torch.set_num_threads(threads)

    def _rows(self, X: Any) -> np.ndarray:
        if isinstance(X, list):
            shapes = {np.shape(x) for x in X}
            if len(shapes) != 1:
                raise DataError(
                    f"{type(self).__name__}: songs differ in input shape {sorted(shapes)[:3]}; "
                    "use a fixed-length front end"
                )
        X = np.asarray(X, dtype=np.float32)
        if X.ndim not in (self.row_ndim + 1, self.row_ndim + 2):
            raise DataError(
                f"{type(self).__name__}: expected rows of {self.row_ndim}-D inputs, got an array "
                f"of shape {X.shape}"
            )
        return X

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"{self.family}_emb_{i}" for i in range(self._width())], dtype=object)

    def _width(self) -> int:
        raise NotImplementedError


CRNNOutput = Literal["conv", "gru", "tags"]


class CRNNEmbedding(_Embedding):
    """Per-song embeddings of Won's CRNN (frozen, eval mode) from ``won-logmel`` inputs.

    Parameters
    ----------
    weights : str
        Path of a CRNN checkpoint (``crnn_mtat.pth``, ``crnn_jamendo.pth``, ``crnn_msd.pth``).
    sha256 : str, optional
        Expected SHA-256 of the file.
    output : {"conv", "gru", "tags"}
        ``conv``: the last conv block's 128 channels pooled over time by mean and std (256-d);
        ``gru``: the GRU's last step (32-d); ``tags``: the 50 tag probabilities.
    batch_size : int
        Songs per forward pass.
    num_threads : int, optional
        torch threads while embedding (restored afterwards).
    cache : bool
        Store embeddings in merkit's on-disk cache and an in-process memo (``False``: neither).
    precision : {"float32", "bf16", "winograd"}
        ``float32`` runs the conv blocks fused on oneDNN (:func:`_fused_blocks`; outputs within
        1e-6 of the eager network, 2x less CPU); ``bf16`` runs them in bfloat16 there (another
        2.5x less CPU on a CPU with native bfloat16, tag probabilities within about 1e-2 of
        float32; float32 on other CPUs); ``winograd`` runs all but the first in float32 through
        NNPACK's Winograd convolutions (:func:`~merkit.transfer.won_crnn.winograd_conv_blocks`:
        1.45x less CPU for the blocks on an AVX2 CPU, outputs within about 1e-5 of ``float32``).
        Part of the cache key when not ``float32``.
    """

    family = "crnn"

    def __init__(
        self,
        weights: str | None = None,
        sha256: str | None = None,
        output: CRNNOutput = "conv",
        batch_size: int = 8,
        num_threads: int | None = None,
        cache: bool = True,
        precision: str = "float32",
    ) -> None:
        self.weights = weights
        self.sha256 = sha256
        self.output = output
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.cache = cache
        self.precision = precision

    def _what(self) -> str:
        from merkit.transfer.won_crnn import WHAT

        return WHAT

    def validate_settings(self) -> None:
        if self.output not in ("conv", "gru", "tags"):
            raise ConfigError(f"setting 'output' must be conv, gru or tags, not {self.output!r}")
        if self.precision not in CRNN_PRECISIONS:
            raise ConfigError(
                f"setting 'precision' must be one of {', '.join(CRNN_PRECISIONS)}, "
                f"not {self.precision!r}"
            )
        super().validate_settings()

    def _settings(self) -> dict[str, Any]:
        # float32 keys stay as they were before the setting existed (caches remain valid).
        if self.precision == "float32":
            return {"output": self.output}
        return {"output": self.output, "precision": self.precision}

    def _autocast(self) -> Any:
        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _forward(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return model.features(batch, self.output).float()  # type: ignore[operator]

    def _forward_all(
        self, model: torch.nn.Module, batch: torch.Tensor
    ) -> dict[tuple[tuple[str, Any], ...], torch.Tensor]:
        blocks = _fused_blocks(model, self.precision)
        # The GRU and dense layers are cheap: float32 unless there is no oneDNN at all.
        with self._autocast() if blocks is None else contextlib.nullcontext():
            maps = model.conv_maps(batch, blocks)  # type: ignore[operator]
            state = model.gru_state(maps)  # type: ignore[operator]
            tags = torch.sigmoid(model.dense(state))  # type: ignore[operator]
        maps = maps.float()
        return {
            (("output", "conv"),): torch.cat(
                [maps.mean(dim=2), maps.std(dim=2, unbiased=False)], dim=1
            ),
            (("output", "gru"),): state.float(),
            (("output", "tags"),): tags.float(),
        }

    def _width(self) -> int:
        return {"conv": 256, "gru": 32, "tags": 50}[self.output]

    def transform(self, X: Any) -> np.ndarray:
        """``(n_songs, frames, 96)`` dB mels → ``(n_songs, width)``."""
        rows = self._rows(X)
        if rows.ndim != 3:
            raise DataError(f"CRNNEmbedding expects (songs, frames, 96), got {rows.shape}")
        return self._embed_rows(rows)


class ArtistEmbedding(_Embedding):
    """Embeddings of Park's artist-label encoder (frozen, eval mode), 256-d per 129-frame chunk.

    Rows are single chunks ``(129, 128)`` (→ one 256-d vector each, for chunk-level training) or
    songs of chunks ``(n_chunks, 129, 128)`` (→ the chunks' vectors pooled by ``pooling``).

    Parameters
    ----------
    weights : str
        Path of the Keras HDF5 file (``artist_siamese_10000.h5``).
    sha256 : str, optional
        Expected SHA-256 of the file.
    pooling : {"mean", "mean-std"}
        How a song's chunk embeddings are combined (song rows only).
    batch_size, num_threads, cache
        As for :class:`CRNNEmbedding` (batch of chunks).
    """

    family = "artist"

    def __init__(
        self,
        weights: str | None = None,
        sha256: str | None = None,
        pooling: Literal["mean", "mean-std"] = "mean",
        batch_size: int = 64,
        num_threads: int | None = None,
        cache: bool = True,
    ) -> None:
        self.weights = weights
        self.sha256 = sha256
        self.pooling = pooling
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.cache = cache

    def _what(self) -> str:
        from merkit.transfer.artist_cnn import WHAT

        return WHAT

    def validate_settings(self) -> None:
        if self.pooling not in ("mean", "mean-std"):
            raise ConfigError(f"setting 'pooling' must be mean or mean-std, not {self.pooling!r}")
        super().validate_settings()

    def _forward(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return model(batch)

    def _width(self) -> int:
        return 512 if self.pooling == "mean-std" else 256

    def transform(self, X: Any) -> np.ndarray:
        """``(n, 129, 128)`` chunks → ``(n, 256)``; ``(n, n_chunks, 129, 128)`` songs → pooled."""
        rows = self._rows(X)
        if rows.ndim == 3:
            return self._embed_rows(rows)
        n_songs, n_chunks = rows.shape[:2]
        chunks = self._embed_rows(rows.reshape(n_songs * n_chunks, *rows.shape[2:]))
        per_song = chunks.reshape(n_songs, n_chunks, -1)
        if self.pooling == "mean-std":
            return np.concatenate([per_song.mean(axis=1), per_song.std(axis=1)], axis=1)
        return per_song.mean(axis=1)


class FramePooling(TransformerMixin, BaseEstimator):
    """Per-song pooling of frame embeddings ``(frames, d)`` → one vector.

    Parameters
    ----------
    pooling : {"first", "mean", "mean-std"}
        ``first``: the first frame only (what the paper's OpenL3 code fed its forest);
        ``mean``; ``mean-std`` (mean ‖ standard deviation over frames).
    """

    def __init__(self, pooling: Literal["first", "mean", "mean-std"] = "mean-std") -> None:
        self.pooling = pooling

    def validate_settings(self) -> None:
        if self.pooling not in ("first", "mean", "mean-std"):
            raise ConfigError(
                f"setting 'pooling' must be first, mean or mean-std, not {self.pooling!r}"
            )

    def fit(self, X: Any, y: Any = None) -> FramePooling:
        """Nothing to learn; checks the setting."""
        self.validate_settings()
        return self

    def transform(self, X: Any) -> np.ndarray:
        """One row per song from a list (or array) of ``(frames, d)`` matrices."""
        songs = [np.asarray(song, dtype=np.float32) for song in X]
        if any(song.ndim != 2 or len(song) == 0 for song in songs):
            raise DataError("FramePooling expects one non-empty (frames, dim) matrix per song")
        if self.pooling == "first":
            return np.stack([song[0] for song in songs])
        if self.pooling == "mean":
            return np.stack([song.mean(axis=0) for song in songs])
        return np.stack([np.concatenate([song.mean(axis=0), song.std(axis=0)]) for song in songs])


__all__ = ["CRNN_PRECISIONS", "ArtistEmbedding", "CRNNEmbedding", "FramePooling", "row_digest"]
