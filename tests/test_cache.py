"""The on-disk feature cache (merkit.representations.cache)."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import merkit.representations.cache as cache_module
from merkit.core.errors import ConfigError
from merkit.representations.cache import FeatureCache, NullCache, default_cache_root, key_for


def test_key_is_canonical_and_sensitive_to_every_input() -> None:
    base = key_for("file:abc", "logmel", {"n_mels": 128, "top_db": 80.0}, "1")
    assert len(base) == 64 and int(base, 16) >= 0
    # Parameter order does not matter; numpy scalars hash like Python numbers.
    assert key_for("file:abc", "logmel", {"top_db": 80.0, "n_mels": 128}, "1") == base
    assert key_for("file:abc", "logmel", {"n_mels": np.int64(128), "top_db": 80.0}, "1") == base
    others = {
        key_for("file:abd", "logmel", {"n_mels": 128, "top_db": 80.0}, "1"),
        key_for("file:abc", "logmel-paper", {"n_mels": 128, "top_db": 80.0}, "1"),
        key_for("file:abc", "logmel", {"n_mels": 64, "top_db": 80.0}, "1"),
        key_for("file:abc", "logmel", {"n_mels": 128, "top_db": 80.0}, "2"),
    }
    assert base not in others and len(others) == 4
    with pytest.raises(ConfigError, match="not JSON-serialisable"):
        key_for("file:abc", "logmel", {"fn": object()}, "1")


def test_put_get_roundtrip_hits_and_misses(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    key = key_for("file:x", "logmel", {}, "1")
    assert cache.get(key) is None and key not in cache
    array = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    path = cache.put(key, array)
    assert path == tmp_path / "features" / key[:2] / f"{key}.npy"
    np.testing.assert_array_equal(cache.get(key), array)
    assert (cache.hits, cache.misses) == (1, 1)
    # float16 storage: half the bytes, values rounded to float16.
    key16 = key_for("file:x", "logmel", {}, "f16")
    cache.put(key16, array, dtype="float16")
    stored = cache.get(key16)
    assert stored is not None and stored.dtype == np.float16
    np.testing.assert_array_equal(stored, array.astype(np.float16))
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_file_is_a_miss_and_is_rewritten(tmp_path: Path, damage: str) -> None:
    cache = FeatureCache(tmp_path)
    key = key_for("file:y", "logmel", {}, "1")
    array = np.random.default_rng(0).standard_normal((50, 20)).astype(np.float32)
    path = cache.put(key, array)
    raw = path.read_bytes()
    path.write_bytes(
        {"truncate": raw[: len(raw) // 2], "garbage": b"\x93NUMPY garbage", "empty": b""}[damage]
    )

    assert cache.get(key) is None
    assert not path.exists()  # dropped, so the next put starts clean
    cache.put(key, array)
    np.testing.assert_array_equal(cache.get(key), array)


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FeatureCache(tmp_path)
    key = key_for("file:z", "logmel", {}, "1")
    final = cache.path_for(key)
    array = np.ones((100, 10), dtype=np.float32)
    seen: list[tuple[bool, bool]] = []
    real_replace = os.replace

    def checking_replace(src: str, dst: str) -> None:
        # At the moment of the rename the temp file is complete and the final name absent.
        seen.append((Path(dst) == final and not final.exists(), Path(src).parent == final.parent))
        np.testing.assert_array_equal(np.load(src), array)
        real_replace(src, dst)

    monkeypatch.setattr(cache_module.os, "replace", checking_replace)
    cache.put(key, array)
    assert seen == [(True, True)]

    def failing_save(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module.np, "save", failing_save)
    other = key_for("file:z", "logmel", {}, "2")
    with pytest.raises(ConfigError, match="No space left"):
        cache.put(other, array)
    assert not cache.path_for(other).exists()
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]  # no temp file left


def test_unwritable_root_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    cache = FeatureCache(blocker)
    with pytest.raises(ConfigError, match="not-a-folder"):
        cache.put(key_for("s", "r", {}, "1"), np.zeros(3))


def test_default_root_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MERKIT_CACHE", str(tmp_path / "c"))
    assert default_cache_root() == tmp_path / "c"
    assert FeatureCache().root == tmp_path / "c"
    monkeypatch.delenv("MERKIT_CACHE")
    assert default_cache_root() == Path.home() / ".cache" / "merkit"


def test_null_cache_stores_nothing() -> None:
    cache = NullCache()
    cache.put("ab12", np.ones(3))
    assert cache.get("ab12") is None


def _expected(index: int) -> np.ndarray:
    return np.random.default_rng(index).standard_normal((256, 256)).astype(np.float32)


def _fill(root: str, n_keys: int, rounds: int) -> tuple[int, list[str]]:
    """Worker: write then read every key several times while the other worker does the same.

    Each read must give the whole expected array: a torn read (a file caught mid-write) would be
    a miss or a wrong array.
    """
    cache = FeatureCache(root)
    arrays = [_expected(i) for i in range(n_keys)]
    bad = 0
    for _ in range(rounds):
        for i in range(n_keys):
            key = key_for(f"song{i}", "rep", {}, "1")
            cache.put(key, arrays[i])
            got = cache.get(key)
            if got is None or not np.array_equal(got, arrays[i]):
                bad += 1
    digests = []
    for i in range(n_keys):
        got = cache.get(key_for(f"song{i}", "rep", {}, "1"))
        digests.append(hashlib.sha256(got.tobytes()).hexdigest() if got is not None else "")
    return bad, digests


def test_two_processes_fill_the_same_cache(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        futures = [pool.submit(_fill, str(tmp_path), 30, 5) for _ in range(2)]
        (bad_a, digests_a), (bad_b, digests_b) = (f.result(timeout=120) for f in futures)
    assert bad_a == bad_b == 0
    expected = [hashlib.sha256(_expected(i).tobytes()).hexdigest() for i in range(30)]
    assert digests_a == digests_b == expected
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 30 and all(p.suffix == ".npy" for p in files)
