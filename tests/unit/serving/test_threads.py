"""The serving thread plan caps BLAS/OpenMP pools at one thread, and can be undone."""

from __future__ import annotations

import numpy as np  # noqa: F401 - loads numpy's OpenBLAS so there is a pool to cap
import sklearn  # noqa: F401 - and scikit-learn's OpenMP runtime
from threadpoolctl import threadpool_info

from router.serving.threads import limit_native_threads


def test_native_pools_get_one_thread_until_restored() -> None:
    before = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
    limiter = limit_native_threads()
    try:
        assert threadpool_info() and all(p["num_threads"] == 1 for p in threadpool_info())
    finally:
        limiter.restore_original_limits()
    assert {p["filepath"]: p["num_threads"] for p in threadpool_info()} == before
