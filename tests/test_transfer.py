"""Pre-trained networks: Keras/torch layouts, front ends, checkpoint checks, frozen transfer."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from conftest import FOURQAED, PRETRAINED, needs_4qaed
from merkit.core.errors import ModelError
from merkit.transfer import artist_cnn, won_crnn
from merkit.transfer.checkpoints import check_weights_file, file_sha256
from merkit.transfer.embedders import ArtistEmbedding, CRNNEmbedding
from merkit.transfer.heads import LinearHead

CRNN_FILES = {name: PRETRAINED / f"crnn_{name}.pth" for name in ("mtat", "jamendo", "msd")}
ARTIST_FILE = PRETRAINED / "artist_siamese_10000.h5"
needs_crnn = pytest.mark.skipif(
    not all(path.is_file() for path in CRNN_FILES.values()),
    reason=f"Won's CRNN checkpoints are not in {PRETRAINED} (../shared/pretrained beside the "
    "checkout)",
)
needs_artist = pytest.mark.skipif(
    not ARTIST_FILE.is_file(),
    reason=f"the artist CNN weights are not at {ARTIST_FILE} (../shared/pretrained)",
)


# ---- Keras -> torch layouts (synthetic, always run) --------------------------------------------


def test_conv1d_kernel_lands_where_torch_expects_it():
    # Keras kernel (k, in, out) with distinct known values; element [k, i, o] = 100k + 10i + o.
    k, n_in, n_out = 4, 2, 3
    kernel = np.array(
        [[[100 * a + 10 * b + c for c in range(n_out)] for b in range(n_in)] for a in range(k)],
        dtype=np.float32,
    )
    weight = artist_cnn.conv1d_kernel_to_torch(kernel)
    assert tuple(weight.shape) == (n_out, n_in, k)
    assert weight[2, 1, 0] == 12.0  # out 2, in 1, tap 0
    assert weight[0, 0, 3] == 300.0

    # Keras "same" (k = 4 pads 1 before, 2 after): y[t, o] = sum_j sum_i x[t + j - 1, i] W[j, i, o]
    x = np.arange(5 * n_in, dtype=np.float32).reshape(5, n_in) / 10
    padded = np.concatenate([np.zeros((1, n_in)), x, np.zeros((2, n_in))])
    expected = np.array(
        [[sum(padded[t + j] @ kernel[j][:, o] for j in range(k)) for o in range(n_out)]
         for t in range(5)]
    )  # fmt: skip
    block = artist_cnn.KerasConv1dBlock(n_in, n_out, k, pool=1)
    with torch.no_grad():
        block.conv.weight.copy_(weight)
        block.conv.bias.zero_()
        got = block.conv(torch.nn.functional.pad(torch.from_numpy(x).T[None], block.padding))
    np.testing.assert_allclose(got[0].T.numpy(), expected, rtol=1e-5)
    assert artist_cnn.keras_same_padding(4) == (1, 2)
    assert artist_cnn.keras_same_padding(2) == (0, 1)
    assert artist_cnn.keras_same_padding(1) == (0, 0)


def test_batchnorm_with_known_statistics_matches_keras_formula():
    rng = np.random.default_rng(0)
    gamma, beta = np.array([2.0, 0.5], np.float32), np.array([1.0, -1.0], np.float32)
    mean, var = np.array([3.0, -2.0], np.float32), np.array([4.0, 1e-4], np.float32)
    x = rng.normal(size=(6, 2)).astype(np.float32)
    # Keras BatchNormalization at inference, epsilon 1e-3
    expected = gamma * (x - mean) / np.sqrt(var + 1e-3) + beta
    bn = nn.BatchNorm1d(2, eps=artist_cnn.BN_EPS).eval()
    bn.load_state_dict(
        {
            "weight": torch.from_numpy(gamma),
            "bias": torch.from_numpy(beta),
            "running_mean": torch.from_numpy(mean),
            "running_var": torch.from_numpy(var),
            "num_batches_tracked": torch.tensor(0),
        }
    )
    np.testing.assert_allclose(bn(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-5)
    # torch's default epsilon (1e-5) would be visibly wrong for the small-variance channel
    wrong = gamma * (x - mean) / np.sqrt(var + 1e-5) + beta
    assert np.abs(wrong[:, 1] - expected[:, 1]).max() > 1.0


def _keras_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    out = {}
    for key, shape in artist_cnn.expected_keras_shapes().items():
        value = rng.normal(size=shape).astype(np.float32)
        out[key] = np.abs(value) + 0.5 if key.endswith("moving_variance") else value
    return out


def test_keras_state_maps_every_encoder_key():
    state = artist_cnn.keras_to_torch_state(_keras_weights())
    encoder = artist_cnn.ArtistEncoder()
    encoder.load_state_dict(state, strict=True)  # no missing or unexpected key
    assert encoder.blocks[0].bn.eps == 1e-3
    out = encoder.eval()(torch.zeros(3, 129, 128))
    assert tuple(out.shape) == (3, 256)


# ---- front ends ------------------------------------------------------------------------------


def test_won_front_end_shapes_and_values():
    sr = 16_000
    y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(30 * sr) / sr).astype(np.float32)
    assert won_crnn.won_logmel(y).shape == (1813, 96)
    short = won_crnn.won_logmel(y[: 10 * sr])
    assert short.shape == (1813, 96)
    np.testing.assert_allclose(short[700:], -100.0)  # zero padding: silence at the 1e-10 floor
    assert won_crnn.won_logmel(y[:sr], crop_samples=None).shape == (1 + sr // 256, 96)
    # a 440 Hz tone peaks in the band whose centre is nearest 440 Hz
    bank = won_crnn.htk_filterbank()
    freqs = np.linspace(0, 8000, 257)
    assert np.argmax(won_crnn.won_logmel(y)[900]) == np.argmax(bank[np.argmin(abs(freqs - 440))])


def test_artist_front_end_shapes_and_normalisation():
    y = np.zeros(22_050 * 5, dtype=np.float32)  # silence, shorter than 1291 frames
    chunks = artist_cnn.artist_logmel_chunks(y)
    assert chunks.shape == (10, 129, 128)
    np.testing.assert_allclose(chunks, -artist_cnn.MEAN / artist_cnn.STD, rtol=1e-6)


def test_crnn_shapes_through_the_network():
    model = won_crnn.WonCRNN(4).eval()
    with torch.no_grad():
        maps = model.conv_maps(torch.randn(1, 1813, 96))
        assert tuple(maps.shape) == (1, 128, 18)  # 1813 // 2 // 3 // 4 // 4
        assert tuple(model.gru_state(maps).shape) == (1, 32)
    x = torch.randn(2, 200, 96)
    assert tuple(model.features(x, "conv").shape) == (2, 256)
    assert tuple(model.features(x, "tags").shape) == (2, 4)
    assert tuple(model(x).shape) == (2, 4)


def test_frozen_head_on_cached_state_equals_head_behind_frozen_network():
    torch.manual_seed(0)
    model = won_crnn.WonCRNN(4).eval()
    x = torch.randn(3, 400, 96)
    head = LinearHead(32, 4, dropout=0.5).eval()
    head.dense.load_state_dict(model.dense.state_dict())
    with torch.no_grad():
        np.testing.assert_allclose(
            head(model.features(x, "gru")).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6
        )


# ---- checkpoint files ------------------------------------------------------------------------


def test_missing_path_and_checksum_give_one_clear_message(tmp_path):
    with pytest.raises(ModelError, match="weights: PATH"):
        check_weights_file(None, what="CRNN checkpoint")
    with pytest.raises(ModelError, match="not found: .*nope.pth"):
        check_weights_file(tmp_path / "nope.pth")
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    assert file_sha256(path) == good
    assert check_weights_file(path, sha256=good.upper()) == path
    with pytest.raises(ModelError, match=f"w.bin has SHA-256 {good}, expected 00"):
        check_weights_file(path, sha256="00" * 32)


def test_state_dict_of_another_network_lists_keys_and_shapes(tmp_path):
    state = won_crnn.WonCRNN(50).state_dict()
    state["spec.spectrogram.window"] = torch.zeros(512)
    state["spec.mel_scale.fb"] = torch.zeros(257, 96)
    state.pop("layer5.weight_hh_l1")
    state["extra.weight"] = torch.zeros(1)
    state["layer1.conv.weight"] = torch.zeros(32, 1, 3, 3)
    path = tmp_path / "other.pth"
    torch.save(state, path)
    with pytest.raises(ModelError) as error:
        won_crnn.read_checkpoint(path)
    message = str(error.value)
    assert str(path) in message
    assert "missing keys ['layer5.weight_hh_l1']" in message
    assert "unexpected keys ['extra.weight']" in message
    assert "layer1.conv.weight: (32, 1, 3, 3) (expected (64, 1, 3, 3))" in message


def test_truncated_torch_file_gives_clear_message(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(won_crnn.WonCRNN(50).state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ModelError, match=r"cannot read .*cut.pth \(truncated or not a PyTorch"):
        won_crnn.read_checkpoint(path)


def test_truncated_hdf5_file_gives_clear_message(tmp_path):
    path = tmp_path / "cut.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(ModelError, match=r"cannot read .*cut.h5 \(truncated or not a Keras"):
        artist_cnn.load_artist_encoder(path)


def test_hdf5_missing_a_layer_is_named(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "partial.h5"
    weights = _keras_weights()
    with h5py.File(path, "w") as handle:
        group = handle.create_group("model_weights")
        layers = sorted({key.split("/")[0] for key in weights if not key.startswith("conv1d_5")})
        group.attrs["layer_names"] = [name.encode() for name in layers]
        for layer in layers:
            sub = group.create_group(layer)
            names = [k.split("/")[1] for k in weights if k.startswith(layer + "/")]
            sub.attrs["weight_names"] = [f"{layer}/{n}:0".encode() for n in names]
            for name in names:
                sub.create_dataset(f"{layer}/{name}:0", data=weights[f"{layer}/{name}"])
    with pytest.raises(ModelError, match=r"missing keys \['conv1d_5/bias', 'conv1d_5/kernel'\]"):
        artist_cnn.load_artist_encoder(path)


# ---- the real checkpoints (skipped without ../shared/pretrained) -----------------------------


@needs_crnn
@pytest.mark.parametrize("name", sorted(CRNN_FILES))
def test_crnn_checkpoints_load_with_only_the_head_replaced(name):
    state = won_crnn.read_checkpoint(CRNN_FILES[name])
    model = won_crnn.load_won_crnn(CRNN_FILES[name], n_classes=4)
    own = set(model.state_dict())
    assert set(state) - own == set(won_crnn.FRONT_END_KEYS)  # torchaudio's, replaced by numpy
    for key in own - {"dense.weight", "dense.bias"}:
        assert torch.equal(model.state_dict()[key], state[key]), key
    assert tuple(model.dense.weight.shape) == (4, 32)


@needs_crnn
def test_numpy_front_end_equals_the_checkpoint_filterbank_and_window():
    state = won_crnn.read_checkpoint(CRNN_FILES["mtat"])
    np.testing.assert_allclose(won_crnn.htk_filterbank(), state["spec.mel_scale.fb"], atol=2e-5)
    np.testing.assert_allclose(
        won_crnn.hann_periodic(512), state["spec.spectrogram.window"], atol=1e-6
    )


@needs_artist
def test_artist_encoder_yields_256_d_embeddings():
    encoder = artist_cnn.load_artist_encoder(ARTIST_FILE)
    assert not encoder.training
    rng = np.random.default_rng(0)
    songs = rng.normal(size=(2, 10, 129, 128)).astype(np.float32)
    embedding = ArtistEmbedding(str(ARTIST_FILE), cache=False).fit(songs)
    assert embedding.transform(songs).shape == (2, 256)
    assert embedding.transform(songs[0]).shape == (10, 256)  # chunk rows
    with_std = ArtistEmbedding(str(ARTIST_FILE), pooling="mean-std", cache=False).fit(songs)
    assert with_std.transform(songs).shape == (2, 512)


@needs_crnn
@needs_4qaed
def test_mtat_tags_of_a_metal_clip_rank_rock_above_classical():
    from merkit.audio.decode import load_audio

    model = won_crnn.load_won_crnn(CRNN_FILES["mtat"])
    y = load_audio(FOURQAED / "Q2" / "MT0000011357.ogg", 16_000)
    tags = model.features(torch.from_numpy(won_crnn.won_logmel(y))[None], "tags")[0].numpy()
    named = dict(zip(won_crnn.MTAT_TAGS, tags, strict=True))
    top = sorted(named, key=named.get, reverse=True)[:5]
    assert "rock" in top and "classical" not in top
    assert named["rock"] > 10 * named["classical"]


@needs_crnn
def test_frozen_network_stays_frozen_while_the_head_trains(tmp_path):
    from merkit.methods import resolve_method

    weights = tmp_path / "crnn.pth"
    shutil.copy(CRNN_FILES["mtat"], weights)
    rng = np.random.default_rng(0)
    X = rng.normal(-30, 10, size=(16, 200, 96)).astype(np.float32)
    y = np.repeat([0, 1, 2, 3], 4)
    resolved = resolve_method("crnn-mtat", {"weights": str(weights), "epochs": 3})
    pipeline = resolved.estimator.set_params(embed__cache=False).fit(X, y)
    network, _ = pipeline.named_steps["embed"]._model()
    original = won_crnn.read_checkpoint(weights)
    for key, value in network.state_dict().items():
        assert torch.equal(value, original[key]), key
    assert not any(p.requires_grad for p in network.parameters())
    assert not network.training

    # and with the estimator's freeze patterns on the whole network (fine-tuning machinery)
    from merkit.training.classifier import TorchClassifier
    from merkit.training.hooks import Callback

    class Snapshot(Callback):
        def on_fit_start(self, ctx):
            type(self).start = {k: v.clone() for k, v in ctx.model.state_dict().items()}

    classifier = TorchClassifier(
        model="merkit.transfer.won_crnn:transfer_crnn",
        model_params={"weights": str(weights)},
        epochs=2,
        batch_size=8,
        optimizer="adam",
        lr=1e-2,
        stop_train_accuracy=None,
        freeze=("spec_bn.*", "layer*"),
        random_state=0,
        train_options={"recalibrate_batchnorm": False},
        callbacks=[Snapshot()],
    ).fit(X, y)
    trained = classifier.model_.state_dict()
    for key, value in original.items():
        if key.startswith(("spec_bn", "layer")):
            assert torch.equal(trained[key], value), key  # BN statistics included
    assert not torch.equal(trained["dense.weight"], Snapshot.start["dense.weight"])  # it learnt


@needs_crnn
def test_embeddings_are_cached_by_row_and_weight_content(tmp_path, monkeypatch):
    monkeypatch.setenv("MERKIT_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "crnn.pth"
    shutil.copy(CRNN_FILES["mtat"], weights)
    X = np.random.default_rng(0).normal(-30, 10, size=(2, 200, 96)).astype(np.float32)
    embed = CRNNEmbedding(str(weights), output="conv").fit(X)
    first = embed.transform(X)
    calls = []
    original = CRNNEmbedding._forward_all
    monkeypatch.setattr(
        CRNNEmbedding, "_forward_all", lambda self, m, b: calls.append(1) or original(self, m, b)
    )
    np.testing.assert_array_equal(embed.transform(X), first)
    assert CRNNEmbedding(str(weights), output="gru").fit(X).transform(X).shape == (2, 32)
    assert calls == []  # one pass stored every output
    # another checkpoint (other content) does not reuse them
    other = tmp_path / "msd.pth"
    shutil.copy(CRNN_FILES["msd"], other)
    assert not np.allclose(CRNNEmbedding(str(other)).fit(X).transform(X), first)
    assert calls == [1]


@needs_crnn
@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_uncached_embeddings_hash_no_row_and_equal_the_cached_ones(
    tmp_path, monkeypatch, precision
):
    from merkit.transfer import embedders

    monkeypatch.setenv("MERKIT_CACHE", str(tmp_path / "cache"))
    X = np.random.default_rng(1).normal(-30, 10, size=(3, 200, 96)).astype(np.float32)
    path = str(CRNN_FILES["mtat"])
    cached = CRNNEmbedding(path, output="tags", precision=precision).transform(X)
    hashed = []
    original = embedders.row_digest
    monkeypatch.setattr(embedders, "row_digest", lambda row: hashed.append(1) or original(row))
    uncached = CRNNEmbedding(path, output="tags", precision=precision, cache=False)
    np.testing.assert_array_equal(uncached.transform(X), cached)  # bit for bit
    assert hashed == []  # the keys served only the caches
    CRNNEmbedding(path, output="gru", precision=precision).transform(X)  # from the cache
    assert len(hashed) == len(X)  # each row hashed once, not once per sibling output


# ---- OpenL3 (optional) and frame pooling -------------------------------------------------------


def test_openl3_rf_without_the_package_says_how_to_install(monkeypatch):
    from merkit.core.errors import ConfigError
    from merkit.methods import resolve_method
    from merkit.transfer import openl3_frames

    monkeypatch.setattr(openl3_frames, "openl3_available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'merkit\[openl3\]'"):
        resolve_method("openl3-rf")


def test_frame_pooling_first_mean_and_std():
    from merkit.transfer.embedders import FramePooling

    songs = [np.array([[1.0, 2.0], [3.0, 6.0]]), np.array([[0.0, 0.0], [0.0, 2.0], [0.0, 4.0]])]
    np.testing.assert_allclose(FramePooling("first").fit(songs).transform(songs), [[1, 2], [0, 0]])
    np.testing.assert_allclose(
        FramePooling("mean-std").fit(songs).transform(songs),
        [[2, 4, 1, 2], [0, 2, 0, np.sqrt(8 / 3)]],
    )


# ---- merkit embed ------------------------------------------------------------------------------


@needs_crnn
def test_embed_command_writes_one_row_per_song(tmp_path, monkeypatch):
    import pandas as pd
    from typer.testing import CliRunner

    from conftest import make_4qaed_tree
    from merkit.cli import app

    monkeypatch.setenv("MERKIT_CACHE", str(tmp_path / "cache"))
    labels = make_4qaed_tree(tmp_path / "data", per_quadrant=1, features=False)
    out = tmp_path / "emb.csv"
    args = ["embed", "--model", "crnn-mtat", "--weights", str(CRNN_FILES["mtat"]), "--out"]
    result = CliRunner().invoke(app, [*args, str(out), "--root", str(tmp_path / "data"), "--quiet"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert sorted(table["SongID"]) == sorted(labels)
    assert table.shape == (len(labels), 1 + 256 + 1)
    assert dict(zip(table["SongID"], table["Quadrant"], strict=True)) == labels
    bad = CliRunner().invoke(
        app, ["embed", "--model", "crnn-mtat", "--weights", str(tmp_path / "x.pth"), "--out",
              str(out), "--root", str(tmp_path / "data")],
    )  # fmt: skip
    assert bad.exit_code == 1 and "file not found" in bad.output


@needs_crnn
def test_fine_tuning_starts_from_the_probe_head_and_the_checkpoint_body():
    head = {"weight": torch.full((4, 32), 0.25), "bias": torch.arange(4.0)}
    params = {"weights": str(CRNN_FILES["mtat"])}
    state = won_crnn.state_with_head(params, 4, head)
    original = won_crnn.read_checkpoint(CRNN_FILES["mtat"])
    assert torch.equal(state["dense.weight"], head["weight"])
    assert torch.equal(state["dense.bias"], head["bias"])
    for key, value in state.items():
        if not key.startswith("dense."):
            assert torch.equal(value, original[key]), key
    model = won_crnn.transfer_crnn(4, **params)
    model.load_state_dict(state, strict=True)


def test_openl3_rf_runs_with_the_package_and_records_its_version_and_front_end(monkeypatch):
    """With ``openl3`` installed (a stand-in module here: its real weights need TensorFlow), the
    method learns from pooled frames and every fold record names the library and front end."""
    import sys
    import types

    from merkit.methods import resolve_method
    from merkit.protocol import ProtocolConfig, make_folds
    from merkit.protocol.runner import fit_fold
    from merkit.transfer import openl3_frames

    calls = []

    def get_audio_embedding(y, sr, *, input_repr, content_type, embedding_size, hop_size, **_):
        calls.append((sr, input_repr, content_type, embedding_size, hop_size))
        frames = 1 + int(len(y) / sr / hop_size)
        level = float(np.sqrt(np.mean(np.square(y))))  # the "embedding" carries the loudness
        return np.full((frames, embedding_size), level, np.float32), np.arange(frames) * hop_size

    fake = types.ModuleType("openl3")
    fake.get_audio_embedding = get_audio_embedding
    monkeypatch.setitem(sys.modules, "openl3", fake)
    monkeypatch.setattr(openl3_frames, "openl3_available", lambda: True)
    monkeypatch.setattr(openl3_frames, "openl3_version", lambda: "0.4.2")

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 6)
    songs = [
        openl3_frames.openl3_frames(
            (0.1 * (q + 1) * rng.standard_normal(1600)).astype(np.float32), 16_000
        )
        for q in labels
    ]
    assert calls[0] == (16_000, "mel256", "music", 512, 0.1)
    assert songs[0].shape == (2, 512)

    method = resolve_method("openl3-rf", {"n_estimators": 20})
    protocol = ProtocolConfig(n_splits=2, n_repeats=1)
    for fold in make_folds(labels, protocol):
        record = fit_fold(method, {"openl3": songs}, labels, fold, protocol)
        assert record.metrics.f1 == 1.0  # loudness separates the classes perfectly
        assert record.extras["embedding_library"] == "openl3 0.4.2"
        assert record.extras["front_end"].startswith("mel256, content_type music, 512-d, hop 0.1")
        assert record.extras["pooling"] == "mean-std"
