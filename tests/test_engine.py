"""The executor: order, laziness, nesting, scoped BLAS limits, no processes unless asked."""

import threading

import pytest
from threadpoolctl import threadpool_info

from audiogmm import ParameterError
from audiogmm.engine import LocalExecutor, one_blas_thread


def _blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_results_come_back_in_item_order_for_any_worker_count():
    def slow_square(x):
        threading.Event().wait(0.001 * (7 - x % 7))  # finish out of order
        return x * x

    for n in (1, 2, 4):
        with LocalExecutor(n) as ex:
            assert list(ex.map(slow_square, range(30))) == [x * x for x in range(30)]


def test_nested_maps_run_inline_and_do_not_deadlock():
    with LocalExecutor(2) as ex:

        def outer(i):
            return sum(ex.map(lambda j: i * j, range(5)))

        assert list(ex.map(outer, range(6))) == [10 * i for i in range(6)]


def test_blas_limit_is_scoped_to_the_map():
    before = _blas_threads()
    seen = []
    with LocalExecutor(2) as ex:
        list(ex.map(lambda _: seen.append(_blas_threads()), range(4)))
    assert all(s == [1] * len(before) for s in seen)
    assert _blas_threads() == before
    with one_blas_thread():
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before


def test_no_processes_unless_asked_and_closed_after():
    ex = LocalExecutor(2)
    assert list(ex.map(abs, [-1, -2, -3], isolated=True)) == [1, 2, 3]
    assert list(ex._pools) == [False]  # threads only
    ex.close()
    assert not ex._pools
    with pytest.raises(RuntimeError, match="closed"):
        list(ex.map(abs, [1, 2, 3]))


def test_processes_when_asked():
    with LocalExecutor(2, processes=True) as ex:
        assert list(ex.map(abs, [-1, -2, -3], isolated=True)) == [1, 2, 3]
        assert True in ex._pools
    assert not ex._pools


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_bad_worker_counts(n):
    with pytest.raises(ParameterError, match="n_workers"):
        LocalExecutor(n)


def test_a_blas_loaded_after_the_first_limit_is_limited_too():
    # the BLAS view was built once: scipy's OpenBLAS, loaded later, ran on every core
    import json
    import os
    import subprocess
    import sys

    code = (
        "from threadpoolctl import threadpool_info\n"
        "from audiogmm.engine import one_blas_thread\n"
        "with one_blas_thread(): pass\n"
        "import numpy, scipy.linalg\n"
        "with one_blas_thread():\n"
        "    print([i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'])\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout  # fmt: skip
    counts = json.loads(out)
    assert counts and all(n == 1 for n in counts), counts
