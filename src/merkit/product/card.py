"""The model card of a model directory: what the model is for and what it is not.

The prose lives in the jinja2 template ``merkit/templates/model_card.md.j2`` (package data); every
number in it comes from the :class:`~merkit.product.model_dir.ModelManifest`: the training data, the
method's cross-validated scores (read from a benchmark ``results.csv``, never estimated here),
intended use and limits.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from merkit.estimators.calibration import ProbabilityCalibration
from merkit.product.model_dir import ModelManifest

TEMPLATE = "model_card.md.j2"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _g(value: float) -> str:
    return f"{value:g}"


def _tojson_sorted(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("merkit", "templates"),
        autoescape=False,  # Markdown, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(pct=_pct, g=_g, tojson_sorted=_tojson_sorted)
    return env


def model_card(manifest: ModelManifest) -> str:
    """The Markdown model card of a manifest (every number comes from the manifest)."""
    template = _environment().get_template(TEMPLATE)
    return template.render(m=manifest, t=manifest.training, cv=manifest.cv)


def reliability_section(layer: ProbabilityCalibration, measured: dict[str, Any]) -> str:
    """The model card's "How sure it is" section: the measured reliability of the model's
    probabilities and what ``mixed`` means (numbers from ``benchmarks/calibration_reliability``).
    """
    before, after = measured["before"], measured["after_cross_fitted"]
    mixed = measured["mixed_cross_fitted"]
    layer_words = (
        f"a post-hoc temperature of {layer.temperature:g} is applied to the probabilities "
        f"(`calibration.json`): expected calibration error {_pct(layer.ece_before)} before, "
        f"{_pct(layer.ece_after)} after (cross-fitted)"
        if layer.temperature != 1.0
        else "the probabilities are used as they are: a post-hoc temperature fitted on the "
        f"same predictions did not improve them ({_pct(before['ece'])} before, "
        f"{_pct(after['ece'])} after, cross-fitted)"
    )
    return (
        "\n## How sure it is\n\n"
        f"Measured on {measured['n_rows']} out-of-fold predictions (each of the "
        f"{measured['n_songs']} songs predicted by a model that never saw it; "
        f"{measured['n_folds']} test folds: {measured['protocol_words']}): the probabilities "
        "have an "
        f"expected calibration error of {_pct(before['ece'])} (the mean gap between how sure "
        "the model says it is and how often it is right; 10 bins of the top probability), "
        f"mean top probability {_pct(before['mean_confidence'])} against "
        f"{_pct(before['accuracy'])} right answers; {layer_words}.\n\n"
        f"An answer is **mixed** when its top probability is below {layer.mixed_below:g} (below "
        "that, the first choice was right less than half the time) or when the quadrant "
        "disagrees with the arousal/valence sides; it then names the two most likely quadrants "
        f'("between Q1 happy/excited and Q3 sad/melancholic"). {_pct(mixed["share_mixed"])} of '
        f"the out-of-fold answers are mixed; {_pct(mixed['accuracy_clear'])} of the others are "
        f"right, and for {_pct(mixed['mixed_truth_in_named_two'])} of the mixed ones the true "
        f"quadrant is one of the two named. Details: `benchmarks/results/{measured['name']}.md`."
        "\n"
    )


__all__ = ["model_card", "reliability_section"]
