"""Small helpers shared by the benchmark scripts (not part of the audiogmm package).

Every script: parses ``--quick``/``--json-out``/``--repeats``, times things with
:func:`median_time` (medians, because the machine is shared), prints one JSON line
per measurement with :func:`emit` and a human-readable table with :func:`table`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from typing import Any, Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(
    doc: str | None,
    repeats: int = 3,
    *,
    quick: str = "small sizes: a smoke run of seconds",
    add: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The options every benchmark accepts (``quick``: its help), plus the script's own (``add``)."""
    p = argparse.ArgumentParser(
        description=(doc or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--json-out", metavar="PATH", help="append the JSON lines to PATH")
    p.add_argument("--repeats", type=int, default=repeats, help="timed repeats (median)")
    if add is not None:
        add(p)
    return p.parse_args()


def quiet_warnings() -> None:
    """Silence convergence warnings: the benchmarks stop EM after a fixed number of steps."""
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

    from audiogmm.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", SkConvergenceWarning)
    warnings.simplefilter("ignore", ConvergenceWarning)
    # with min_weight=0 a component may die (weight 0, log 0 = -inf): expected here
    warnings.filterwarnings("ignore", "divide by zero encountered in log", RuntimeWarning)


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``fn()`` over ``repeats`` calls, and the last return value."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def clustered_data(
    n: int, d: int, *, n_clusters: int = 64, seed: int = 0, dtype=np.float32
) -> np.ndarray:
    """Frames drawn from a random diagonal mixture (unequal weights, spread means)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 3.0, (n_clusters, d))
    sds = rng.uniform(0.5, 1.5, (n_clusters, d))
    weights = rng.dirichlet(np.full(n_clusters, 5.0))
    out = np.empty((n, d), dtype=dtype)
    step = 1 << 18  # bounded temporaries for large n
    for s in range(0, n, step):
        m = min(step, n - s)
        lab = rng.choice(n_clusters, size=m, p=weights)
        out[s : s + m] = means[lab] + rng.standard_normal((m, d)) * sds[lab]
    return out


def initial_params(X: np.ndarray, k: int, seed: int = 1):
    """Identical starting point for both implementations: K random frames as means,
    the global variance for every component, uniform weights (all float64)."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(X.shape[0], size=k, replace=False))
    means = np.asarray(X[idx], dtype=np.float64)
    var = np.asarray(X[: min(len(X), 200_000)], dtype=np.float64).var(0)
    return np.full(k, 1.0 / k), means, np.tile(var, (k, 1))


def emit(record: dict[str, Any], json_out: str | None) -> None:
    """Print one JSON line (and append it to ``json_out``)."""
    rec = {"machine": platform.machine(), "cpus": os.cpu_count(), **record}
    line = json.dumps(rec, sort_keys=False)
    print(line, flush=True)
    if json_out:
        with open(json_out, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """Render rows as an aligned text table; columns are (key, header, format)."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append(
            [("-" if r.get(k) is None else format(r[k], f)) for k, _, f in columns]
        )
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rnd(x: float | None, digits: int = 4) -> float | None:
    """Round for JSON (keeps None)."""
    return None if x is None else float(round(x, digits))


def fuzz(
    strategy: Any, run_case: Callable[[Any], tuple[str, str]], examples: int, show: int
) -> tuple[list[tuple[Any, str]], dict[str, list], float]:
    """Run a hypothesis ``strategy`` through ``run_case`` without stopping at failures.

    Returns every ``(case, outcome)``, the first ``show`` ``(case, detail)`` of each
    ``BAD*`` outcome, and the seconds taken (the fuzz_*.py scripts).
    """
    from hypothesis import HealthCheck, Phase, given, settings

    seen: list[tuple[Any, str]] = []
    bad: dict[str, list] = {}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def one(case):
        outcome, detail = run_case(case)
        seen.append((case, outcome))
        if outcome.startswith("BAD") and len(bad.setdefault(outcome, [])) < show:
            bad[outcome].append((case, detail))

    t0 = time.perf_counter()
    one()
    return seen, bad, time.perf_counter() - t0


def print_bad(bad: dict[str, list]) -> int:
    """Print the BAD cases of :func:`fuzz`; the exit status (1 when there are any)."""
    for outcome, cases in bad.items():
        for case, detail in cases:
            print(f"  {outcome}: {detail}\n      case: {case!r}"[:1500])
    return 1 if bad else 0
