"""UBM EM over a feature shard store: time per iteration and peak RSS per worker, in-process vs Dask.

Writes (once, then reuses) a shard store of ``--frames`` synthetic float32 frames x
``--dims`` (a 16-component mixture, clips of 1,000 frames, 2^20-frame shards),
then, for each variant, in a fresh subprocess: ``--iters`` E-steps of a
``--components`` diagonal GMM over the store (``ShardSource.stats``: canonical
2^17-frame blocks, fixed tree sum) plus the M-step between them.

By default the E-step runs the NumPy path (``AUDIOGMM_NUMBA=0``): at K=256 the fused
numba kernel was measured ~50x slower than NumPy after the first M-step (0.9 s -> 7.5 s
per 100k frames, NumPy 0.15-0.2 s), apparently because it clamps exp() at -87 so that
negligible responsibilities stay ~1e-38 instead of 0 and the following float32 GEMM
runs on denormals. ``--numba`` keeps the kernel.

Variants: ``inproc:N`` (LocalExecutor with N threads) and ``dask:N`` (``DaskExecutor("local:N")``,
N single-threaded worker processes). Reported per variant: seconds per iteration
(median), peak RSS of the driving process and of each Dask worker process
(``VmHWM``), and whether the final parameters are bit-identical to the first
variant's. One JSON line per measurement, then a table.

    python benchmarks/bench_scale.py --frames 2000000                 # ~2 min on 2 cores
    python benchmarks/bench_scale.py --frames 20000000 --variants inproc:2,dask:2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def _rss_mb() -> float:
    """Peak RSS of this process (MB): VmHWM, which exec resets (ru_maxrss does not: a child
    exec'd from a large parent would report the parent's size)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_store(folder: str, n_frames: int, n_dims: int, seed: int = 0):
    from audiogmm.data.shards import ShardWriter, is_store, open_store

    if is_store(folder):
        st = open_store(folder)
        if st.n_frames == n_frames and st.n_dims == n_dims:
            return st
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (16, n_dims)).astype(np.float32)
    with ShardWriter(folder, n_dims=n_dims) as w:
        for i, start in enumerate(range(0, n_frames, 1000)):
            n = min(1000, n_frames - start)
            X = rng.standard_normal((n, n_dims), dtype=np.float32)
            X += centres[rng.integers(0, 16, n)]
            w.add(f"clip{i:07d}", f"spk{i % 100:03d}", X)
    return open_store(folder)


def run_one(folder: str, variant: str, n_components: int, iters: int, out: str) -> None:
    """One variant in this (fresh) process; writes the final parameters to ``out``.npz."""
    from audiogmm.data.shards import open_store
    from audiogmm.mixture.diag import DiagGMM
    from audiogmm.mixture.mstep import MLMaximiser
    from audiogmm.mixture.sources import ShardSource
    from audiogmm.mixture.stats import Params

    store = open_store(folder)
    src = ShardSource(store)
    # a UBM's start: means on sampled frames, the data's variance, DiagGMM's relative floor
    rng = np.random.default_rng(1)
    sample = src.gather(np.sort(rng.choice(src.n_frames, 20 * n_components, replace=False)))
    gvar = sample.var(axis=0)
    params = Params(
        np.full(n_components, 1.0 / n_components),
        sample[rng.choice(sample.shape[0], n_components, replace=False)],
        np.tile(gvar, (n_components, 1)),
    )
    maximiser = MLMaximiser(var_floor=DiagGMM().var_floor * gvar)
    kind, n = variant.split(":")
    if kind == "dask":
        from audiogmm.engine.dask import DaskExecutor

        ex = DaskExecutor(f"local:{n}")
    else:
        from audiogmm.engine import LocalExecutor

        ex = LocalExecutor(int(n))
    times = []
    with ex:
        for _ in range(iters):
            t0 = time.perf_counter()
            stats = src.stats(params, shift=params.weights @ params.means, executor=ex)
            params, _ = maximiser(stats, params)
            times.append(time.perf_counter() - t0)
            print(json.dumps({"iter_s": times[-1], "rss_mb": _rss_mb()}), file=sys.stderr)
        workers = (
            sorted(ex.client.run(_rss_mb).values()) if kind == "dask" else []
        )
    np.savez(out, weights=params.weights, means=params.means, variances=params.variances)
    print(json.dumps({
        "variant": variant, "frames": store.n_frames, "dims": store.n_dims,
        "components": n_components, "s_per_iter": float(np.median(times)), "times": times,
        "rss_driver_mb": round(_rss_mb(), 1), "rss_workers_mb": [round(w, 1) for w in workers],
        "mean_loglik": stats.mean_loglik,
    }), flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2_000_000)
    ap.add_argument("--dims", type=int, default=60)
    ap.add_argument("--components", type=int, default=256)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--variants", default="inproc:1,dask:1,inproc:2,dask:2")
    ap.add_argument("--numba", action="store_true",
                    help="Keep the numba E-step kernel (default: AUDIOGMM_NUMBA=0, see the docstring).")
    ap.add_argument("--dir", default=None, help="Store folder (default: /tmp/audiogmm-bench-scale-N).")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    folder = a.dir or f"/tmp/audiogmm-bench-scale-{a.frames}"
    if not a.numba:  # inherited by the variant subprocesses and their Dask workers
        os.environ["AUDIOGMM_NUMBA"] = "0"
    if a.one:
        run_one(folder, a.one, a.components, a.iters, a.out)
        return
    t0 = time.perf_counter()
    store = make_store(folder, a.frames, a.dims)
    size = sum(os.path.getsize(f) for f in store.files) / 1e9
    print(json.dumps({"store": folder, "frames": store.n_frames, "gb": round(size, 2),
                      "write_s": round(time.perf_counter() - t0, 1)}), flush=True)  # fmt: skip
    rows, ref = [], None
    for v in a.variants.split(","):
        out = f"{folder}/params-{v.replace(':', '')}.npz"
        cmd = [sys.executable, __file__, "--one", v, "--out", out, "--dir", folder,
               "--components", str(a.components), "--iters", str(a.iters)]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        got = np.load(out)
        if ref is None:
            ref = got
        row["identical"] = all(np.array_equal(got[k], ref[k]) for k in ref.files)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\nN={store.n_frames:,} frames x {a.dims} dims float32 ({size:.2f} GB), "
          f"K={a.components}, {a.iters} iterations")  # fmt: skip
    print("| variant | s / iteration | peak RSS driver (MB) | peak RSS per worker (MB) | "
          "params identical |")  # fmt: skip
    print("|---|---|---|---|---|")
    for r in rows:
        w = ", ".join(f"{x:.0f}" for x in r["rss_workers_mb"]) or "-"
        print(f"| {r['variant']} | {r['s_per_iter']:.1f} | {r['rss_driver_mb']:.0f} | {w} | "
              f"{'yes' if r['identical'] else 'NO'} |")  # fmt: skip


if __name__ == "__main__":
    main()
