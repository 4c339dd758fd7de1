"""SVM baselines (paper §3.1): Panda et al.'s RBF SVM on the top-100 features and on our own."""

from __future__ import annotations

from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from merkit.core.errors import ConfigError
from merkit.methods.base import MethodSpec, feature_preprocessing
from merkit.methods.registry import register_method

PANDA_C = 8.0
PANDA_GAMMA = 2.0**-9


def svm_classifier(
    C: float = PANDA_C,
    gamma: float = PANDA_GAMMA,
    grid: bool = False,
    grid_step: int = 2,
    inner_folds: int = 5,
    kernel: str = "rbf",
    degree: int = 3,
    c_exponents: tuple[int, int] = (-5, 15),
    gamma_exponents: tuple[int, int] = (-15, 3),
) -> SVC | GridSearchCV:
    """RBF SVC, optionally tuned by an inner-CV grid over C = 2^-5..2^15 and γ = 2^-15..2^3.

    The grid search runs inside ``fit``, i.e. on the outer training fold only. It is the
    special case of ``tune: {space: …}`` (:mod:`merkit.tuning`) kept for compatibility.
    ``kernel`` and ``degree`` are there for the authors' search over four kernels.
    ``c_exponents`` and ``gamma_exponents`` are the grid's inclusive exponent ranges (base 2),
    walked in steps of ``grid_step``.
    """
    svc = SVC(kernel=kernel, C=C, gamma=gamma, degree=degree)
    if not grid:
        return svc
    exponents_c = range(c_exponents[0], c_exponents[1] + 1, grid_step)
    exponents_g = range(gamma_exponents[0], gamma_exponents[1] + 1, grid_step)
    return GridSearchCV(
        svc,
        {"C": [2.0**e for e in exponents_c], "gamma": [2.0**e for e in exponents_g]},
        scoring="f1_macro",
        cv=StratifiedKFold(inner_folds, shuffle=True, random_state=0),
        n_jobs=1,
    )


def build_svm(**params: float | bool | int) -> Pipeline:
    """Median imputation, per-fold standardisation, RBF SVM (Panda et al.: C=8, γ=2^-9)."""
    return Pipeline(
        [
            *feature_preprocessing(),
            ("svm", svm_classifier(**params)),  # type: ignore[arg-type]
        ]
    )


def build_svm_own(
    n_features: int | str | None = 100,
    n_neighbors: int = 10,
    exclude_features: str | list[str] | None = None,
    **params: float | bool | int,
) -> Pipeline:
    """merkit's own features: standardise, ReliefF top-k (in-fold), RBF SVM.

    ``n_features: all`` (or ``null``) keeps every feature (no selection step).
    ``exclude_features`` (``codec-sensitive``, name patterns, or a list) drops own features
    first, e.g. those that change with a song's encoding (:mod:`merkit.features.robust`).
    """
    from merkit.features.robust import DropFeatures, excluded_columns, resolve_patterns
    from merkit.features.selection import ReliefFSelector

    if (
        n_features is not None
        and n_features != "all"
        and (isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1)
    ):
        raise ConfigError(
            f"setting 'n_features' must be a positive integer or 'all', not {n_features!r}"
        )
    selector = (
        "passthrough"
        if n_features is None or n_features == "all"
        else ReliefFSelector(n_features_to_select=n_features, n_neighbors=n_neighbors)  # type: ignore[arg-type]
    )
    # The step exists only when asked for: saved models keep their step names.
    drop = [] if exclude_features is None else [("drop", DropFeatures(exclude_features))]
    if drop:  # a bad value or a pattern matching nothing fails here, before any work
        from merkit.features.own import OWN_FEATURE_NAMES

        excluded_columns(OWN_FEATURE_NAMES, resolve_patterns(exclude_features))
    return Pipeline(
        [
            *drop,
            *feature_preprocessing(),
            ("relieff", selector),
            ("svm", svm_classifier(**params)),  # type: ignore[arg-type]
        ]
    )


SVM = register_method(
    MethodSpec(
        name="svm",
        summary="RBF SVM (C=8, γ=2^-9) on the provided top-100 handcrafted features",
        inputs=("table:top100",),
        build=build_svm,
        paper_row="SVM Baseline",
        paper_f1=0.7559,
    )
)

SVM_OWN = register_method(
    MethodSpec(
        name="svm-own",
        summary="RBF SVM on merkit's own librosa features, in-fold ReliefF top-100",
        inputs=("own-features",),
        build=build_svm_own,
    )
)
