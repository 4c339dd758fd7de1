"""Tests of merkit.models: shapes, exact parameter counts (spec Appendix B), Keras behaviour."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from merkit.core.errors import ConfigError, DataError, ModelError
from merkit.models import (
    CNNH,
    MODELS,
    BaselineCNN,
    ConvAutoencoder,
    FeatureDNN,
    HybridNet,
    build_model,
    count_parameters,
    scale_per_sample,
)
from merkit.models.layers import (
    TRUNC_NORMAL_STD_CORRECTION,
    MaxPool2dSame,
    he_normal_,
    orthogonal_,
    tf_same_pads,
)

# Inputs per model name, batch 2, default sizes.
INPUT_SHAPES: dict[str, tuple[tuple[int, ...], ...]] = {
    "cnn": ((2, 942, 128),),
    "cnn-h": ((2, 942, 128),),
    "cnn-gru-time": ((2, 942, 128),),
    "crnn": ((2, 942, 128),),
    "dnn": ((2, 1704),),
    "hybrid": ((2, 1704), (2, 942, 128)),
    "shortchunk": ((2, 116, 128),),
    "samplecnn": ((2, 59049),),
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _inputs(name: str) -> list[torch.Tensor]:
    return [torch.randn(shape) for shape in INPUT_SHAPES[name]]


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", sorted(INPUT_SHAPES))
def test_classifiers_output_logits_of_four_classes(name: str) -> None:
    model = build_model(name).eval()
    assert len(model.input_names) == len(INPUT_SHAPES[name])
    with torch.no_grad():
        logits = model(*_inputs(name))
    assert logits.shape == (2, 4)
    assert torch.isfinite(logits).all()


def test_registry_names_and_errors() -> None:
    assert set(MODELS) == {*INPUT_SHAPES, "cnn-gru", "autoencoder"}
    with pytest.raises(ConfigError, match=r"unknown model 'resnet'.*cnn-gru.*samplecnn"):
        build_model("resnet")
    with pytest.raises(ConfigError, match="model 'dnn': bad arguments"):
        build_model("dnn", n_feature=10)
    assert build_model("cnn", n_classes=7)(torch.randn(1, 942, 128)).shape == (1, 7)


def test_wrong_input_shape_is_a_data_error() -> None:
    model = BaselineCNN()
    with pytest.raises(DataError, match=r"'cnn'.*'logmel'.*\(B, 942, 128\).*\(2, 940, 128\)"):
        model(torch.randn(2, 940, 128))
    with pytest.raises(DataError, match="'features'"):
        FeatureDNN(n_features=10)(torch.randn(3, 11))


def test_count_parameters_trainable_only() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))  # 8 + 4 params, 5 buffer elements
    assert count_parameters(model) == 12
    model[0].requires_grad_(False)
    assert count_parameters(model) == 4
    assert count_parameters(model, trainable_only=False) == 12


# --------------------------------------------------------------------------- exact counts


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("cnn", {}, 621_264),  # the authors' Keras model's count
        ("cnn-h", {}, 621_264 + 2 * 16),  # plus the BN after pool 4
        ("crnn", {}, 392_582),
        ("dnn", {"n_features": 1704}, 1_036_712),
        ("shortchunk", {}, 12_080_646),  # spec: ≈ 12 080 646; exact here
        ("samplecnn", {}, 1_846_276),  # spec: ≈ 1 846 276; exact here
    ],
)
def test_trainable_parameter_counts(name: str, kwargs: dict, expected: int) -> None:
    assert count_parameters(build_model(name, **kwargs)) == expected


def test_baseline_has_three_batchnorms_96_statistics() -> None:
    model = BaselineCNN()
    stats = sum(b.numel() for n, b in model.named_buffers() if "running" in n)
    assert stats == 96
    assert sum(b.numel() for n, b in CNNH().named_buffers() if "running" in n) == 128


def test_dnn_count_by_hand_for_1714_inputs() -> None:
    # BN γ/β + Dense 1714→500 + 500→300 + 300→100 + 100→4
    expected = 2 * 1714 + (1714 * 500 + 500) + (500 * 300 + 300) + (300 * 100 + 100) + 404
    assert count_parameters(FeatureDNN(n_features=1714)) == expected


def test_autoencoder_counts_and_shapes() -> None:
    model = ConvAutoencoder().eval()
    assert count_parameters(model.encoder) == 269_440
    assert count_parameters(model.decoder) == 679_041
    assert model.latent_size == 60_416 == 59 * 8 * 128
    x = torch.rand(2, 942, 128) * 2 - 1
    with torch.no_grad():
        latent = model.encode(x)
        recon = model.decode(latent)
    assert latent.shape == (2, 60_416)
    assert recon.shape == (2, 942, 128)
    assert recon.abs().max() <= 1.0  # tanh output
    with torch.no_grad():
        torch.testing.assert_close(model(x), recon)


def test_scale_per_sample_maps_to_unit_range_and_inverts() -> None:
    x = torch.stack([torch.linspace(-80.0, 0.0, 12).reshape(3, 4), torch.full((3, 4), -5.0)])
    scaled, center, half = scale_per_sample(x)
    torch.testing.assert_close(scaled[0].amin(), torch.tensor(-1.0))
    torch.testing.assert_close(scaled[0].amax(), torch.tensor(1.0))
    torch.testing.assert_close(center, torch.tensor([-40.0, -5.0]))
    torch.testing.assert_close(half, torch.tensor([40.0, 1.0]))  # constant sample: half-range 1
    assert (scaled[1] == 0).all()
    torch.testing.assert_close(scaled * half[:, None, None] + center[:, None, None], x)


def test_cnn_gru_as_published() -> None:
    """48 M parameters: built once, one forward of batch 1."""
    model = build_model("cnn-gru").eval()
    # Keras: per GRU 3·2000·(2000 + 2000) + 2·3·2000 = 24 012 000 (reset_after: 2 bias vectors,
    # like nn.GRU's bias_ih + bias_hh); trunk 19 760; Dense 600 300 + 22 575 + 304.
    assert count_parameters(model.gru_1) == count_parameters(model.gru_2) == 24_012_000
    assert count_parameters(model) == 48_666_939
    seen: list[torch.Size] = []
    model.gru_1.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape))
    with torch.no_grad():
        assert model(torch.randn(1, 942, 128)).shape == (1, 4)
    assert seen == [torch.Size([1, 1, 2000])]  # a sequence of length one


# --------------------------------------------------------------------------- TF-same pooling


def test_tf_same_pads_match_the_spec() -> None:
    # Keras 'same' pads: (938,2)->0/0, (465,2)->0/1, (229,3)->1/1, (73,3)->1/1; mel axis 25,9 ->0/1
    assert tf_same_pads(938, 2, 2) == (0, 0)
    assert tf_same_pads(465, 2, 2) == (0, 1)
    assert tf_same_pads(229, 3, 3) == (1, 1)
    assert tf_same_pads(73, 3, 3) == (1, 1)
    assert tf_same_pads(25, 2, 2) == (0, 1)
    assert tf_same_pads(9, 2, 2) == (0, 1)
    assert tf_same_pads(59049, 3, 3) == (0, 0)


def test_max_pool_same_windows_and_minus_inf_padding() -> None:
    # Negative ramp along time: zero padding would leak 0s into the edge windows.
    ramp = -(torch.arange(229.0) + 1.0)
    x = ramp.reshape(1, 1, 229, 1).expand(1, 1, 229, 3)
    out = MaxPool2dSame((3, 2))(x)
    assert out.shape == (1, 1, 77, 2)
    # TF windows start one row early: [-1, 0, 1], [2, 3, 4], ..., [227, 228, 229]
    expected = torch.tensor([ramp[max(3 * i - 1, 0)] for i in range(77)])
    torch.testing.assert_close(out[0, 0, :, 0], expected)
    torch.testing.assert_close(out[0, 0, :, 1], expected)  # mel window {2, pad}: pad ignored
    # ceil_mode gives the same size but other windows ([0, 1, 2], ...): must differ
    ceil = nn.functional.max_pool2d(x, (3, 2), ceil_mode=True)
    assert ceil.shape == out.shape
    assert not torch.equal(ceil, out)


def test_baseline_trunk_intermediate_shapes() -> None:
    model = BaselineCNN().eval()
    image = torch.randn(1, 1, 942, 128)
    shapes = []
    with torch.no_grad():
        for block in model.trunk.blocks:
            image = block(image)
            shapes.append(tuple(image.shape[2:]))
    assert shapes == [(469, 62), (233, 29), (77, 13), (25, 5)]
    assert [s for s in model.trunk.block_sizes] == shapes
    assert model.trunk.flat_size == 2000
    with torch.no_grad():
        assert model.features(torch.randn(3, 942, 128)).shape == (3, 2000)
        assert model.embed(torch.randn(3, 942, 128)).shape == (3, 300)


def test_baseline_on_short_chunks_and_too_small_input() -> None:
    model = BaselineCNN(n_frames=116, n_mels=128).eval()
    # time 116→112→56→52→26→22→8→4→2, mel 128→…→5
    assert model.trunk.output_shape == (16, 2, 5)
    with torch.no_grad():
        assert model(torch.randn(2, 116, 128)).shape == (2, 4)
    with pytest.raises(ConfigError, match="too small"):
        BaselineCNN(n_frames=30, n_mels=128)


# --------------------------------------------------------------------------- other shapes


def test_crnn_sequence_is_9_by_128() -> None:
    model = build_model("crnn").eval()
    assert model.sequence_shape == (9, 128)
    with torch.no_grad():
        assert model.sequence(torch.randn(2, 942, 128)).shape == (2, 9, 128)


def test_cnn_gru_time_runs_over_25_steps_and_flips() -> None:
    forward = build_model("cnn-gru-time").eval()
    flipped = build_model("cnn-gru-time", flip_time=True).eval()
    flipped.load_state_dict(forward.state_dict())
    x = torch.randn(2, 942, 128)
    with torch.no_grad():
        seq = forward.sequence(x)
        assert seq.shape == (2, 25, 80)
        torch.testing.assert_close(flipped.sequence(x), seq.flip(1))
        assert not torch.allclose(flipped(x), forward(x))


def test_shortchunk_final_map_is_1x1x512() -> None:
    model = build_model("shortchunk").eval()
    with torch.no_grad():
        assert model.feature_map(torch.randn(2, 116, 128)).shape == (2, 512, 1, 1)


def test_samplecnn_lengths_down_to_1x512() -> None:
    model = build_model("samplecnn").eval()
    lengths = []
    x = torch.randn(1, 1, 59049)
    with torch.no_grad():
        for block in model.blocks:
            x = block(x)
            lengths.append(x.shape[-1])
        assert model.embed(torch.randn(2, 59049)).shape == (2, 512)
    assert lengths == [19683, 6561, 2187, 729, 243, 81, 27, 9, 3, 1, 1]
    assert x.shape == (1, 512, 1)
    with pytest.raises(ConfigError, match="not 1"):
        build_model("samplecnn", n_samples=1000)


# --------------------------------------------------------------------------- Keras init and BN


def test_batchnorms_use_keras_settings() -> None:
    for name in ("cnn", "crnn", "dnn", "shortchunk", "samplecnn", "hybrid"):
        norms = [
            m
            for m in build_model(name).modules()
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))
        ]
        assert norms, name
        assert all(m.momentum == 0.01 and m.eps == 1e-3 for m in norms), name


def test_he_normal_is_truncated_with_target_std() -> None:
    weight = he_normal_(torch.empty(400, 500))
    target = math.sqrt(2.0 / 500)
    assert weight.std().item() == pytest.approx(target, rel=0.02)
    assert weight.abs().max().item() <= 2 * target / TRUNC_NORMAL_STD_CORRECTION + 1e-6


def test_baseline_convs_he_normal_dense_glorot_zero_bias() -> None:
    model = BaselineCNN()
    conv = model.trunk.blocks[1].conv.weight  # fan_in 16·5·5 = 400
    he_std = math.sqrt(2.0 / 400)  # glorot here would give sqrt(2 / 800) = 0.05
    assert conv.std().item() == pytest.approx(he_std, rel=0.05)
    glorot_limit = math.sqrt(6.0 / (2000 + 300))
    assert model.dense.weight.abs().max().item() <= glorot_limit
    assert model.dense.weight.std().item() == pytest.approx(glorot_limit / math.sqrt(3), rel=0.02)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert (module.bias == 0).all()


def test_hybrid_head_is_he_normal() -> None:
    head = HybridNet(n_features=30, n_frames=116).head
    weight = head[1].weight  # Dense 400 → 200
    assert weight.std().item() == pytest.approx(math.sqrt(2.0 / 400), rel=0.03)


def test_orthogonal_matches_torch_and_gru_recurrent_is_orthonormal() -> None:
    for shape in [(96, 32), (32, 96), (6, 4, 3, 3)]:
        torch.manual_seed(5)
        ours = orthogonal_(torch.empty(shape))
        torch.manual_seed(5)
        reference = nn.init.orthogonal_(torch.empty(shape))
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    gru = build_model("crnn").gru_1
    w_hh = gru.weight_hh_l0  # (3·32, 32): Keras' (32, 96) kernel, transposed
    torch.testing.assert_close(w_hh.T @ w_hh, torch.eye(32), atol=1e-5, rtol=0)
    assert (gru.bias_ih_l0 == 0).all() and (gru.bias_hh_l0 == 0).all()


# --------------------------------------------------------------------------- hybrid


def _small_hybrid(**kwargs: bool) -> HybridNet:
    return HybridNet(n_features=30, n_frames=116, **kwargs)


def test_hybrid_frozen_dnn_does_not_move() -> None:
    model = _small_hybrid()
    model.train()
    assert model.training and model.cnn.training and not model.dnn.training
    dnn_before = copy.deepcopy(model.dnn.state_dict())  # includes BN running statistics
    head_before = copy.deepcopy(model.head.state_dict())
    cnn_before = model.cnn.dense.weight.detach().clone()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    features, logmel = torch.randn(8, 30), torch.randn(8, 116, 128)
    target = torch.arange(8) % 4
    loss = nn.functional.cross_entropy(model(features, logmel), target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for key, value in model.dnn.state_dict().items():
        assert torch.equal(value, dnn_before[key]), key
    assert all(p.grad is None for p in model.dnn.parameters())
    assert not torch.equal(model.head.state_dict()["1.weight"], head_before["1.weight"])
    assert not torch.equal(model.cnn.dense.weight, cnn_before)
    # frozen: dropout off, so the DNN embedding is deterministic in training mode
    torch.testing.assert_close(model.dnn.embed(features), model.dnn.embed(features))


def test_hybrid_freeze_flags_and_parameter_count() -> None:
    model = _small_hybrid()
    head = 2 * 400 + (400 * 200 + 200) + (200 * 100 + 100) + (100 * 4 + 4)
    assert count_parameters(model) == count_parameters(model.cnn) + head
    model.set_frozen(dnn=False, cnn=True)
    assert count_parameters(model) == count_parameters(model.dnn) + head
    model.train()
    assert model.dnn.training and not model.cnn.training


def test_hybrid_load_branches() -> None:
    model = _small_hybrid()
    dnn = FeatureDNN(n_features=30)
    cnn = CNNH(n_frames=116)
    model.load_branches(dnn.state_dict(), cnn.state_dict())
    for key, value in dnn.state_dict().items():
        assert torch.equal(model.dnn.state_dict()[key], value)
    assert torch.equal(model.cnn.dense.weight, cnn.dense.weight)
    assert not any(p.requires_grad for p in model.dnn.parameters())  # still frozen
    with pytest.raises(ModelError, match="dnn weights do not fit"):
        model.load_branches(dnn_state=FeatureDNN(n_features=31).state_dict())
    with pytest.raises(ModelError, match="cnn-h weights do not fit"):
        model.load_branches(cnn_state=BaselineCNN(n_frames=116).state_dict())  # no 4th BN


# --------------------------------------------------------------------------- channels_last


@pytest.mark.parametrize(
    ("name", "kwargs", "shapes"),
    [
        ("cnn", {}, ((2, 942, 128),)),
        ("crnn", {}, ((2, 942, 128),)),
        ("shortchunk", {}, ((2, 116, 128),)),
        ("hybrid", {"n_features": 30, "n_frames": 116}, ((2, 30), (2, 116, 128))),
        ("autoencoder", {}, ((2, 942, 128),)),
    ],
)
def test_channels_last_matches_nchw(name: str, kwargs: dict, shapes: tuple) -> None:
    model = build_model(name, **kwargs).eval()
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    # A conv between feature maps (the CNN's first, 1-channel conv runs as stacked row shifts).
    conv = next(m for m in fast.modules() if isinstance(m, nn.Conv2d) and m.in_channels > 1)
    formats: list[bool] = []
    conv.register_forward_hook(
        lambda _m, _a, out: formats.append(out.is_contiguous(memory_format=torch.channels_last))
    )
    inputs = [torch.randn(shape) for shape in shapes]
    with torch.no_grad():
        torch.testing.assert_close(fast(*inputs), model(*inputs), atol=1e-4, rtol=1e-4)
    assert formats == [True]  # the conv really ran channels_last


# --------------------------------------------------------------------------- learning


def test_dnn_learns_separable_blobs() -> None:
    generator = torch.Generator().manual_seed(1)
    centers = torch.randn(4, 12, generator=generator) * 3
    labels = torch.arange(200) % 4
    features = centers[labels] + torch.randn(200, 12, generator=generator)
    model = FeatureDNN(n_features=12)

    def accuracy() -> float:
        model.eval()
        with torch.no_grad():
            return (model(features).argmax(1) == labels).float().mean().item()

    assert accuracy() < 0.5
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, eps=1e-7)
    model.train()
    for _ in range(20):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(features), labels).backward()
        optimizer.step()
    assert accuracy() > 0.95
