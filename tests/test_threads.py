"""``merkit.core.threads``: one BLAS thread while inputs are computed, shared by threads."""

from __future__ import annotations

import threading

import numpy as np
from threadpoolctl import threadpool_info

from merkit.core.threads import BLAS_THREADS, blas_limited


def _blas_sizes() -> set[int]:
    return {int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"}


def test_threads_inside_at_once_all_compute_with_the_limit_and_the_last_restores() -> None:
    assert np.dot(np.ones((2, 2)), np.ones(2)).sum() == 4  # a BLAS library is loaded
    before = _blas_sizes()
    seen: list[set[int]] = []
    first_out = threading.Event()

    def early() -> None:
        with blas_limited():
            seen.append(_blas_sizes())
        first_out.set()

    def late() -> None:
        with blas_limited():
            first_out.wait(5)  # the first has left: the limit must hold for this one still
            seen.append(_blas_sizes())

    threads = [threading.Thread(target=late), threading.Thread(target=early)]
    threads[0].start()
    threads[1].start()
    for t in threads:
        t.join(10)
    assert seen == [{BLAS_THREADS}, {BLAS_THREADS}]
    assert _blas_sizes() == before  # restored once nobody is inside
