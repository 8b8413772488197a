"""A/B of two audiogmm checkouts as users run them, interleaved in one session.

Single timings on a shared or virtual machine drift by tens of percent over an hour, so two
releases' tables taken at different times do not separate a 5-10 % change. This script runs
both checkouts in alternating order (A B, then B A, ...), each command a fresh process
(``PYTHONPATH`` at the checkout, the installed ``audiogmm`` console script), on the manifests
``bench_cli.py`` writes (the same splits), and prints medians of wall and CPU time:

- ``pair``: ``train --cache C`` + ``evaluate --cache C``, the cache empty at the start;
- ``auto``: ``train`` and ``train --preset auto --components auto`` without a cache, and
  their ratio (issue 22's budget: at most 4x).

``--train-args`` adds options to every ``train`` (e.g. ``"--backend gsv --preset speaker"``).

    python benchmarks/ab_cli.py --trees /path/to/old,/path/to/new --only large-speakers
    python benchmarks/ab_cli.py --trees OLD,NEW --only large-sounds --mode auto --repeats 3
    python benchmarks/ab_cli.py --trees OLD,NEW --train-args "--backend gsv --preset speaker"
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import tempfile

from _cli_common import (
    Dataset,
    audiogmm_exe,
    base_env,
    devcorpus_datasets,
    run,
    sample_datasets,
    write_manifest,
)


def datasets(only: str) -> list[Dataset]:
    out = sample_datasets() + devcorpus_datasets()[0]
    keep = [k for k in only.split(",") if k]
    return [d for d in out if not keep or any(k == d.name for k in keep)]


def env_for(tree: str) -> dict[str, str]:
    env = base_env()
    env["PYTHONPATH"] = os.path.abspath(tree)  # this checkout only, not the script's
    return env


def one(mode: str, ds: Dataset, env: dict[str, str], tmp: str,
        extra: list[str]) -> dict[str, tuple[float, float]]:  # fmt: skip
    exe, model, cache = audiogmm_exe(), os.path.join(tmp, "m.npz"), os.path.join(tmp, "cache")
    shutil.rmtree(cache, ignore_errors=True)
    train = [exe, "train", ds.csv, "--split", "train", "-o", model, *extra]
    if mode == "pair":
        a = run([*train, "--cache", cache], env)
        b = run([exe, "evaluate", model, ds.csv, "--split", "test", "--json", "--cache", cache],
                env)  # fmt: skip
        return {"pair": (a.seconds + b.seconds, a.cpu_s + b.cpu_s)}
    a = run(train, env)
    b = run([*train, "--preset", "auto", "--components", "auto"], env)
    return {"train": (a.seconds, a.cpu_s), "auto": (b.seconds, b.cpu_s)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trees", required=True, help="two checkouts, comma-separated: A,B")
    p.add_argument("--only", default="", help="comma-separated data set names (bench_cli's)")
    p.add_argument("--mode", choices=("pair", "auto"), default="pair")
    p.add_argument("--repeats", type=int, default=4, help="timed rounds (after one warm-up)")
    p.add_argument("--train-args", default="", help="options added to every train")
    args = p.parse_args()
    extra = shlex.split(args.train_args)
    if args.mode == "auto" and extra:
        raise SystemExit("--train-args: with --mode auto, train's options are auto's own")
    trees = args.trees.split(",")
    if len(trees) != 2 or not all(os.path.isdir(os.path.join(t, "audiogmm")) for t in trees):
        raise SystemExit("--trees: two checkouts of audiogmm, comma-separated")
    if os.path.realpath(trees[0]) == os.path.realpath(trees[1]):
        raise SystemExit("--trees: the same checkout twice; give two different ones")
    if args.repeats < 1:
        raise SystemExit(f"--repeats: at least 1 timed round, got {args.repeats}")
    chosen = datasets(args.only)
    if not chosen:
        names = ", ".join(d.name for d in datasets(""))
        raise SystemExit(f"--only {args.only!r} matches no data set; there are: {names}")
    with tempfile.TemporaryDirectory() as tmp:
        for ds in chosen:
            write_manifest(ds, os.path.join(tmp, ds.name))
            times: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for rnd in range(args.repeats + 1):
                for tree in trees if rnd % 2 == 0 else trees[::-1]:
                    got = one(args.mode, ds, env_for(tree), tmp, extra)
                    for key, v in got.items():
                        if rnd:  # round 0 warms the OS cache and the .pyc files
                            times.setdefault((tree, key), []).append(v)
            print(f"{ds.name}: {ds.n_classes} classes, {ds.n_train} / {ds.n_test} files, "
                  f"medians of {args.repeats}")  # fmt: skip
            for tree in trees:
                med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
                       for (t, k), v in times.items() if t == tree}  # fmt: skip
                cells = [f"{k} {w:.2f} s wall, {c:.2f} s CPU" for k, (w, c) in med.items()]
                if args.mode == "auto":
                    (tw, tc), (aw, ac) = med["train"], med["auto"]
                    cells.append(f"auto / train {aw / tw:.2f}x wall, {ac / tc:.2f}x CPU")
                print(f"  {tree}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
