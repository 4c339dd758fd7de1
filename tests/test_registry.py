"""One Registry type behind every name-keyed table (merkit.core.registry)."""

from __future__ import annotations

import pytest

from merkit.core.errors import ConfigError, DataError, ModelError
from merkit.core.registry import Registry


def test_register_get_and_order() -> None:
    table: Registry[int] = Registry("shape")
    assert table.register("square", 4) == 4

    @table.register("triangle")
    def three() -> int:
        return 3

    assert table.get("square") == 4
    assert table["triangle"] is three
    assert list(table) == ["square", "triangle"] == list(table.names())
    assert "square" in table and "circle" not in table and len(table) == 2
    assert table.get("circle", None) is None
    assert table.items() == [("square", 4), ("triangle", three)]


def test_unknown_name_says_the_closest_and_lists_all() -> None:
    table: Registry[int] = Registry("shape", error=DataError)
    table.register("square", 4)
    table.register("circle", 0)
    with pytest.raises(DataError, match=r"unknown shape 'squre'; did you mean 'square'\? "
                       r"\(known: square, circle\)"):  # fmt: skip
        table.get("squre")
    with pytest.raises(DataError, match=r"unknown shape 'hexagon' \(known: square, circle\)$"):
        table["hexagon"]


def test_a_name_is_registered_once_unless_replaced() -> None:
    table: Registry[int] = Registry("shape")
    table.register("square", 4)
    with pytest.raises(ConfigError, match="shape 'square' is already registered"):
        table.register("square", 5)
    table.register("square", 5, replace=True)
    assert table.get("square") == 5
    assert table.unregister("square") == 5 and "square" not in table
    with pytest.raises(ConfigError, match="non-empty name"):
        table.register("", 1)


def test_every_name_keyed_table_is_a_registry() -> None:
    from merkit.datasets import DATASETS
    from merkit.estimators.augmentation import AUGMENTATIONS
    from merkit.methods import METHODS
    from merkit.models import MODELS
    from merkit.product.shipped import SHIPPED_MODELS
    from merkit.representations.augmented import TRANSFORMS
    from merkit.representations.registry import REPRESENTATIONS
    from merkit.transfer.embed import FAMILIES

    tables = [
        DATASETS,
        AUGMENTATIONS,
        METHODS,
        MODELS,
        SHIPPED_MODELS,
        TRANSFORMS,
        REPRESENTATIONS,
        FAMILIES,
    ]
    assert all(isinstance(t, Registry) for t in tables)
    assert SHIPPED_MODELS.error is ModelError and DATASETS.error is DataError


def test_representations_are_callables_carrying_their_shape() -> None:
    import merkit.methods  # noqa: F401  (the layer that names every representation)
    from merkit.representations.registry import REPRESENTATIONS

    merkit_own = [
        (n, r) for n, r in REPRESENTATIONS.items() if r.fn.__module__.startswith("merkit.")
    ]
    assert len(merkit_own) >= 25  # other tests may register their own beside them
    for name, rep in merkit_own:
        assert callable(rep.fn), name
        assert rep.shape is not None, name  # every built-in entry carries its shape
        assert "<" not in rep.reference, name  # a module-level function: pickles to workers
    own = REPRESENTATIONS.get("own-features")
    assert own.reference == "merkit.features.own:extract_own_features"
    assert REPRESENTATIONS.get("crnn-tags3-canon").shape(16_000, {
        "output": "tags", "checkpoints": [["a", "b"]] * 3
    }) == (150,)  # fmt: skip
