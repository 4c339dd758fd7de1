"""Code paths stored on disk before the package move (issue 28) still load: pickled class paths,
manifest ``fn`` and ``class_path`` strings (merkit.core.moved).

merkit-rewrite: skip (this file names the old module paths on purpose)
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from merkit.core.moved import MOVED_MODULES, current_module, current_path, load_joblib
from merkit.estimators.fusion import FusionClassifier
from merkit.product.model_dir import EstimatorFile, InputSpec
from merkit.training.classifier import TorchClassifier

PRETRAINED = Path(importlib.import_module("merkit").__file__).parent / "pretrained"


def _protocol2_pickle(module: str, name: str) -> bytes:
    """A pickle of ``module.name.__new__(module.name)``, naming the class as given."""
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")\x81."


@pytest.mark.parametrize(
    ("module", "name", "cls"),
    [
        ("merkit.fusion", "FusionClassifier", FusionClassifier),
        # an old module whose name is a package now
        ("merkit.estimators", "TorchClassifier", TorchClassifier),
        # a current path is read as itself
        ("merkit.estimators.fusion", "FusionClassifier", FusionClassifier),
    ],
)
def test_load_joblib_reads_old_class_paths(
    tmp_path: Path, module: str, name: str, cls: type
) -> None:
    path = tmp_path / "old.joblib"
    path.write_bytes(_protocol2_pickle(module, name))
    assert type(load_joblib(path)) is cls


def test_load_joblib_leaves_joblib_as_it_was(tmp_path: Path) -> None:
    import joblib.numpy_pickle

    before = joblib.numpy_pickle.NumpyUnpickler
    path = tmp_path / "bad.joblib"
    path.write_bytes(_protocol2_pickle("merkit.fusion", "NoSuchClass"))
    with pytest.raises(AttributeError):
        load_joblib(path)
    assert joblib.numpy_pickle.NumpyUnpickler is before
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("merkit.fusion")  # the old name is not importable outside


def test_current_path_maps_old_modules_only() -> None:
    assert (
        current_path("merkit.representations:canonical_representation")
        == "merkit.representations.registry:canonical_representation"
    )
    assert current_path("merkit.features.own:extract_own_features") == (
        "merkit.features.own:extract_own_features"
    )
    assert current_module("sklearn.svm") == "sklearn.svm"
    assert current_module("merkit.audio") == "merkit.audio.decode"


def test_every_moved_module_target_imports() -> None:
    for new in set(MOVED_MODULES.values()):
        importlib.import_module(new)


def test_manifest_paths_are_read_as_current() -> None:
    spec = InputSpec(
        name="own-features-canon",
        kind="representation",
        fn="merkit.representations:canonical_representation",
    )
    assert spec.fn == "merkit.representations.registry:canonical_representation"
    info = EstimatorFile(
        format="torch", file="model.pt", class_path="merkit.estimators:TorchClassifier", sha256=""
    )
    assert info.class_path == "merkit.training.classifier:TorchClassifier"


@pytest.mark.parametrize("name", ["default", "fast"])
def test_shipped_manifests_name_code_that_exists(name: str) -> None:
    manifest = json.loads((PRETRAINED / name / "manifest.json").read_text())
    references = [spec["fn"] for spec in manifest["inputs"] if spec.get("fn")]
    references.append(manifest["estimator"]["class_path"])
    for reference in references:
        module, _, qualname = current_path(reference).partition(":")
        assert callable(getattr(importlib.import_module(module), qualname)), reference
