"""scikit-learn's estimator checks on ReliefFSelector (the subset that applies)."""

from __future__ import annotations

from typing import Any

from sklearn.utils.estimator_checks import parametrize_with_checks

from merkit.features.selection import ReliefFSelector

EXPECTED_FAILURES = {
    # One row has one class. ReliefFSelector refuses it with a DataError ("needs at least two
    # classes"), a MerkitError the CLI prints without a traceback; the check wants a ValueError
    # whose message says "1 sample" or "one class".
    "check_fit2d_1sample": "one class is refused with DataError, not ValueError",
}


@parametrize_with_checks(
    # the default (keeps every feature of the checks' small data) and a real selection
    [ReliefFSelector(), ReliefFSelector(n_features_to_select=2, n_neighbors=3)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILURES,
)
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    check(estimator)
