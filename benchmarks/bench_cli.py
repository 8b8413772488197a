"""Benchmark: what users type. ``audiogmm train`` + ``audiogmm evaluate`` vs the librosa+sklearn scripts.

Each side is a fresh process timed as a whole (wall clock, ``time.perf_counter`` around
``subprocess.run``), so imports, worker start-up, JIT caches and file reading all count:

* audiogmm (two processes sharing a feature cache that is empty at the start of every
  run; the sum is audiogmm's time, accuracy from ``--json``)::

      audiogmm train MANIFEST --split train -o M.npz --cache C [--audiogmm-args]
      audiogmm evaluate M.npz MANIFEST --split test --json --cache C [--audiogmm-args]

* the two scripts a user writes (one process each, ``benchmarks/reference/sklearn_gmm.py``,
  one ``GaussianMixture(16, "diag")`` per class)::

      python benchmarks/reference/sklearn_gmm.py MANIFEST --frontend librosa --json
      python benchmarks/reference/sklearn_gmm.py MANIFEST --frontend speech --json

  ``librosa``: librosa's defaults (``librosa.load`` at 22,050 Hz, ``librosa.feature.mfcc``);
  ``speech``: 16 kHz, MFCC 25/10 ms + delta + delta-delta + per-clip CMVN. The ratio is
  taken against the faster of the two on each data set ("ref"), and both accuracies are shown.

Also the cost of the feature cache (``--cache-cost``, on by default): ``audiogmm train``
without ``--cache``, with an empty one, and again with the cache it filled
(targets: empty <= 1.15x, filled <= 0.5x the run without).

Data, three sizes of real audio: small = ``data_samples/speakers``, medium =
``data_samples/sounds``, large = the development corpus (``$AUDIOGMM_DEVCORPUS`` or
``~/.cache/audiogmm/devcorpus``, its ``speakers/``, ``sounds/``, ``speakers8k/`` and
``realsounds/``; skipped with a message when absent). ``--data NAME=PATH`` (repeatable)
replaces that list. For each data set a CSV manifest with an explicit split column (70/30
per class, seed 0; 45/55 for realsounds) is written to a temporary folder, so every side
trains and tests on exactly the same files.

Warm and cold:

* warm: ordinary runs (warm OS page cache), after one untimed warm-up run of audiogmm
  (which reads every file; ``--ref-warmup``: of the reference scripts too);
* cold: as on the first run after a fresh install: every cold run gets a fresh, empty
  ``NUMBA_CACHE_DIR`` (no numba cache: whatever numba code runs, audiogmm's kernels or
  librosa's, compiles) and a fresh copy of audiogmm's sources without ``__pycache__``
  (every audiogmm module is byte-compiled again). Installed dependencies keep their
  .pyc files, as pip leaves them. The audiogmm train and evaluate processes of one cold
  run share those folders (the second command finds what the first one cached).
  ``--cold-split`` also times numba-only and audiogmm-pyc-only cold runs to attribute
  the cost, and a pessimistic ``cold_allpyc`` run that also clears every .pyc
  (``PYTHONPYCACHEPREFIX``: the standard library, numpy, scipy, ... recompile).
  The OS page cache is not dropped.

Repeats are interleaved (warm audiogmm, warm references, cold ...; the order of the sides
rotates between repeats) and medians are reported. ``audiogmm --help`` is timed as a
fresh process too (the import cost of the CLI).

Targets: ``--help`` < 0.3 s; audiogmm cold <= 1.5x warm; faster reference / audiogmm
(warm) >= 4x at every size and >= 5x at the largest, at equal or better accuracy.

Run::

    python benchmarks/bench_cli.py --quick          # small data, 1 repeat
    python benchmarks/bench_cli.py --no-cold        # all sizes, 3 repeats, warm only
    python benchmarks/bench_cli.py --audiogmm-args "-j 1" --data spk=data_samples/speakers
    python benchmarks/bench_cli.py --no-cold --frontends librosa --only realsounds  # one set,
        # the faster script only (the speech script was the slower on every development set)
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import tempfile
import time
from typing import Any

from _cli_common import (
    ColdCaches,
    Dataset,
    audiogmm_exe,
    base_env,
    devcorpus_datasets,
    parse_data_overrides,
    reference_cmd,
    run,
    sample_datasets,
    write_manifest,
)
from _common import emit, parse_args, rnd, table

# ColdCaches(numba, pkg, all_pyc) per cold mode
COLD_MODES = {
    "cold": (True, True, False),
    "cold_numba": (True, False, False),
    "cold_pyc": (False, True, False),
    "cold_allpyc": (True, True, True),
}


#: The reference scripts' front ends (benchmarks/reference/sklearn_gmm.py --frontend)
FRONTENDS = ("librosa", "speech")


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cold-repeats", type=int, default=None, help="timed cold repeats [default: --repeats]"
    )
    p.add_argument(
        "--data", action="append", metavar="NAME=PATH",
        help="data set to use instead of the defaults (repeatable): a folder with one "
        "sub-folder per label, or a CSV path,label[,split]",
    )  # fmt: skip
    p.add_argument(
        "--audiogmm-args", default="", metavar="ARGS",
        help='extra arguments for both audiogmm commands, e.g. "-j 1"',
    )  # fmt: skip
    p.add_argument(
        "--cold-split", action="store_true",
        help="also time cold runs with only the numba cache or only audiogmm's .pyc "
        "cleared, and one with every .pyc cleared",
    )  # fmt: skip
    p.add_argument("--no-cold", action="store_true", help="skip the cold runs")
    p.add_argument("--large-only", action="store_true", help="only the development corpus")
    p.add_argument(
        "--frontends", default=",".join(FRONTENDS), metavar="NAMES",
        help="the reference scripts to run (their --frontend), comma-separated "
        "[default: %(default)s]",
    )  # fmt: skip
    p.add_argument(
        "--only", default="", metavar="NAMES",
        help="comma-separated parts of data set names to keep, e.g. realsounds,speakers8k",
    )  # fmt: skip
    p.add_argument(
        "--ref-warmup", action="store_true",
        help="an untimed run of each reference script too, not only of audiogmm (whose "
        "run puts the files in the OS cache for all sides)",
    )  # fmt: skip
    p.add_argument(
        "--no-cache-cost", action="store_true",
        help="skip timing train without a cache, with an empty one and with a filled one",
    )  # fmt: skip
    p.add_argument(
        "--cache-cost-only", action="store_true",
        help="time only train without a cache, with an empty one and with a filled one",
    )  # fmt: skip


def datasets(args) -> list[Dataset]:
    over = parse_data_overrides(args.data)
    if over:
        return over
    out = [] if args.large_only else sample_datasets(quick=args.quick)
    if args.quick:
        return out
    large, msg = devcorpus_datasets()
    if msg:
        print(msg, flush=True)
    keep = [k for k in args.only.split(",") if k]
    return [d for d in out + large if not keep or any(k in d.name for k in keep)]


def run_audiogmm(ds: Dataset, model: str, extra: list[str], env) -> dict[str, Any]:
    """train + evaluate sharing a feature cache that starts empty, as a user's first run."""
    exe, cache = audiogmm_exe(), model + ".cache"
    shutil.rmtree(cache, ignore_errors=True)
    try:
        tr = run([exe, "train", ds.csv, "--split", "train", "-o", model, "--cache", cache,
                  *extra], env)  # fmt: skip
        ev = run([exe, "evaluate", model, ds.csv, "--split", "test", "--json", "--cache", cache,
                  *extra], env)  # fmt: skip
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    res = ev.json()
    return {
        "s": tr.seconds + ev.seconds, "train_s": tr.seconds, "evaluate_s": ev.seconds,
        "cpu_s": tr.cpu_s + ev.cpu_s,
        "accuracy": float(res["accuracy"]), "n_test": int(res["n"]),
    }  # fmt: skip


def run_reference(ds: Dataset, env, frontend: str) -> dict[str, Any]:
    r = run(reference_cmd(ds.csv, frontend), env)
    res = r.json()
    return {
        "s": r.seconds, "cpu_s": r.cpu_s,
        "accuracy": float(res["accuracy"]), "n_test": int(res["n_test"]),
        "stages": res["stages"], "inner_s": res["seconds"],
    }  # fmt: skip


def cache_cost(ds: Dataset, model: str, extra: list[str], repeats: int) -> dict[str, Any]:
    """Median ``train`` times (wall and CPU) without a cache, with an empty one, with the filled one."""
    exe, cache = audiogmm_exe(), model + ".cost-cache"
    cmd = [exe, "train", ds.csv, "--split", "train", "-o", model, *extra]
    t: dict[str, list[float]] = {"none": [], "empty": [], "full": []}
    cpu: dict[str, list[float]] = {"none": [], "empty": [], "full": []}
    for _ in range(repeats):
        shutil.rmtree(cache, ignore_errors=True)
        for kind, c in (("none", cmd), ("empty", [*cmd, "--cache", cache]),
                        ("full", [*cmd, "--cache", cache])):  # fmt: skip
            r = run(c, base_env())
            t[kind].append(r.seconds)
            cpu[kind].append(r.cpu_s)
    shutil.rmtree(cache, ignore_errors=True)
    m = {k: statistics.median(v) for k, v in t.items()}
    c = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "train_nocache_s": rnd(m["none"]), "train_cache_empty_s": rnd(m["empty"]),
        "train_cache_full_s": rnd(m["full"]),
        "cache_empty_over_none": rnd(m["empty"] / m["none"], 2),
        "cache_full_over_none": rnd(m["full"] / m["none"], 2),
        "train_nocache_cpu_s": rnd(c["none"]), "train_cache_empty_cpu_s": rnd(c["empty"]),
        "train_cache_full_cpu_s": rnd(c["full"]),
        "cache_empty_over_none_cpu": rnd(c["empty"] / c["none"], 2),
        "cache_full_over_none_cpu": rnd(c["full"] / c["none"], 2),
    }  # fmt: skip


def time_help(repeats: int, cold: bool) -> dict[str, Any]:
    exe, warm = audiogmm_exe(), []
    run([exe, "--help"], base_env())  # untimed warm-up
    for _ in range(repeats):
        warm.append(run([exe, "--help"], base_env()).seconds)
    out = {"help_s": statistics.median(warm), "help_min_s": min(warm)}
    if cold:
        with ColdCaches() as env:
            out["help_cold_s"] = run([exe, "--help"], env).seconds
    return out


def bench_dataset(ds: Dataset, args, tmp: str) -> dict[str, Any]:
    extra = shlex.split(args.audiogmm_args)
    repeats = 1 if args.quick else args.repeats
    if args.cache_cost_only:
        model = os.path.join(tmp, ds.name + ".npz")
        run([audiogmm_exe(), "train", ds.csv, "--split", "train", "-o", model, *extra],
            base_env())  # untimed warm-up: the files in the OS cache  # fmt: skip
        return {
            "bench": "cli_cache_cost", "dataset": ds.name, "source": ds.source,
            "n_classes": ds.n_classes, "n_train": ds.n_train, "n_test": ds.n_test,
            "audio_s": rnd(ds.audio_s, 1), "repeats": repeats,
            **cache_cost(ds, model, extra, repeats),
        }  # fmt: skip
    cold_repeats = 0 if args.no_cold else (repeats if args.cold_repeats is None else args.cold_repeats)
    model = os.path.join(tmp, ds.name + ".npz")
    modes = list(COLD_MODES) if args.cold_split else ["cold"]
    sides = {"ours": lambda env: run_audiogmm(ds, model, extra, env)}
    frontends = [fe for fe in args.frontends.split(",") if fe]
    if not frontends or set(frontends) - set(FRONTENDS):
        raise SystemExit(f"--frontends: expected names among {FRONTENDS}, got {args.frontends!r}")
    for fe in frontends:
        sides["ref_" + fe] = lambda env, fe=fe: run_reference(ds, env, fe)
    t = {(side, mode): [] for side in sides for mode in ["warm", *COLD_MODES]}
    cpu = {(side, mode): [] for side in sides for mode in ["warm", *COLD_MODES]}
    last: dict[tuple[str, str], dict[str, Any]] = {}

    def once(side: str, mode: str) -> None:
        if mode == "warm":
            r = sides[side](base_env())
        else:
            with ColdCaches(*COLD_MODES[mode]) as env:
                r = sides[side](env)
        t[side, mode].append(r["s"])
        cpu[side, mode].append(r["cpu_s"])
        last[side, mode] = r
        print(f"  {ds.name:>16} {mode:>10} {side:>11}: {r['s']:6.2f} s (cpu {r['cpu_s']:6.2f} s)"
              f"  acc {r['accuracy']:.3f}", flush=True)  # fmt: skip

    print(f"{ds.name}: warm-up ...", flush=True)
    for side in sides if args.ref_warmup else ["ours"]:  # the files are then in the OS cache
        sides[side](base_env())
    names = list(sides)
    for rep in range(max(repeats, cold_repeats)):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for mode in ["warm", *modes]:
            if (mode == "warm" and rep >= repeats) or (mode != "warm" and rep >= cold_repeats):
                continue
            for side in order:
                once(side, mode)

    def med(side: str, mode: str, key: str = "s"):
        v = (t if key == "s" else cpu)[side, mode]
        return statistics.median(v) if v else None

    # the faster reference script (warm median) is the one to beat
    fast = min((n for n in sides if n != "ours"), key=lambda n: med(n, "warm"))
    ours, ref = med("ours", "warm"), med(fast, "warm")
    row: dict[str, Any] = {
        "bench": "cli_end_to_end", "dataset": ds.name, "source": ds.source,
        "N": ds.n_train + ds.n_test, "D": None, "K": 16, "dtype": "float32",
        "n_classes": ds.n_classes, "n_train": ds.n_train, "n_test": ds.n_test,
        "audio_s": rnd(ds.audio_s, 1),
        "ours_s": rnd(ours), "ref": fast[4:], "ref_s": rnd(ref), "ratio": rnd(ref / ours, 2),
        "floor_s": None,
        "ours_cpu_s": rnd(med("ours", "warm", "cpu_s")), "ref_cpu_s": rnd(med(fast, "warm", "cpu_s")),
        "cpu_ratio": rnd(med(fast, "warm", "cpu_s") / med("ours", "warm", "cpu_s"), 2),
        "ours_train_s": rnd(last["ours", "warm"]["train_s"]),
        "ours_evaluate_s": rnd(last["ours", "warm"]["evaluate_s"]),
        "ours_accuracy": rnd(last["ours", "warm"]["accuracy"]),
        "ref_accuracy": rnd(last[fast, "warm"]["accuracy"]),
        "audiogmm_args": args.audiogmm_args, "repeats": repeats, "cold_repeats": cold_repeats,
    }  # fmt: skip
    for fe in frontends:
        row[f"ref_{fe}_s"] = rnd(med("ref_" + fe, "warm"))
        row[f"ref_{fe}_cpu_s"] = rnd(med("ref_" + fe, "warm", "cpu_s"))
        row[f"ref_{fe}_accuracy"] = rnd(last["ref_" + fe, "warm"]["accuracy"])
        row[f"ref_{fe}_stages"] = last["ref_" + fe, "warm"]["stages"]
        row[f"ratio_{fe}"] = rnd(med("ref_" + fe, "warm") / ours, 2)
    for mode in modes:
        oc, rc = med("ours", mode), med(fast, mode)
        if oc is None:
            continue
        row[f"ours_{mode}_s"] = rnd(oc)
        row[f"ref_{mode}_s"] = rnd(rc)
        row[f"ours_{mode}_over_warm"] = rnd(oc / ours, 2)
        row[f"ours_{mode}_cpu_s"] = rnd(med("ours", mode, "cpu_s"))
        row[f"ours_{mode}_cpu_over_warm"] = rnd(
            med("ours", mode, "cpu_s") / med("ours", "warm", "cpu_s"), 2
        )
        row[f"ref_{mode}_over_warm"] = rnd(rc / ref, 2)
        if mode == "cold":
            row["ours_cold_train_s"] = rnd(last["ours", mode]["train_s"])
            row["ours_cold_evaluate_s"] = rnd(last["ours", mode]["evaluate_s"])
            row["cold_ratio"] = rnd(rc / oc, 2)
    if not args.no_cache_cost:
        row.update(cache_cost(ds, model, extra, repeats))
    return row


def main() -> None:
    args = parse_args(__doc__, quick="1 repeat, small data only", add=options)
    t_start = time.perf_counter()
    print(f"audiogmm: {audiogmm_exe()} (PYTHONPATH={base_env()['PYTHONPATH']})", flush=True)
    sets = datasets(args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        for ds in sets:
            write_manifest(ds, os.path.join(tmp, ds.name))
            print(
                f"{ds.name}: {ds.source}: {ds.n_classes} classes, {ds.n_train} train / "
                f"{ds.n_test} test files, {ds.audio_s:.0f} s of audio", flush=True,
            )  # fmt: skip
        h = time_help(3 if args.quick else max(5, args.repeats), cold=not args.no_cold)
        help_row = {
            "bench": "cli_help", "N": None, "D": None, "K": None, "dtype": None,
            "ours_s": rnd(h["help_s"]), "ref_s": None, "ratio": None, "floor_s": None,
            "min_s": rnd(h["help_min_s"]), "cold_s": rnd(h.get("help_cold_s")),
        }  # fmt: skip
        emit(help_row, args.json_out)
        for ds in sets:
            try:
                row = bench_dataset(ds, args, tmp)
            except SystemExit as e:  # a failing command: report it, keep the other data sets
                print(f"{ds.name}: skipped: {e}", flush=True)
                continue
            emit(row, args.json_out)
            rows.append(row)

    print()
    cols = [
        ("dataset", "data", "s"), ("n_classes", "classes", "d"), ("n_train", "train", "d"),
        ("n_test", "test", "d"), ("audio_s", "audio s", ".0f"),
        ("ours_s", "audiogmm s", ".2f"), ("ours_train_s", "(train", ".2f"),
        ("ours_evaluate_s", "+ eval)", ".2f"), ("ref_librosa_s", "ref librosa s", ".2f"),
        ("ref_speech_s", "ref speech s", ".2f"), ("ref", "faster", "s"),
        ("ratio", "ref/ours", ".2f"), ("cpu_ratio", "(cpu)", ".2f"),
        ("ours_cold_s", "audiogmm cold s", ".2f"), ("ours_cold_over_warm", "cold/warm", ".2f"),
        ("ours_cold_cpu_over_warm", "(cpu)", ".2f"), ("ref_cold_s", "ref cold s", ".2f"),
        ("ours_accuracy", "audiogmm acc", ".3f"), ("ref_librosa_accuracy", "librosa acc", ".3f"),
        ("ref_speech_accuracy", "speech acc", ".3f"),
        ("cache_empty_over_none", "cache empty/none", ".2f"),
        ("cache_full_over_none", "filled/none", ".2f"),
        ("cache_empty_over_none_cpu", "(cpu: empty", ".2f"),
        ("cache_full_over_none_cpu", "filled)", ".2f"),
    ]  # fmt: skip
    if args.cold_split:
        cols[16:16] = [
            ("ours_cold_numba_over_warm", "numba-only", ".2f"),
            ("ours_cold_pyc_over_warm", "pyc-only", ".2f"),
            ("ours_cold_allpyc_over_warm", "all-pyc", ".2f"),
        ]
    print(table(rows, cols))
    print(
        f"audiogmm --help: {h['help_s']:.3f} s median (min {h['help_min_s']:.3f} s)"
        + (f", cold {h['help_cold_s']:.3f} s" if "help_cold_s" in h else "")
    )
    if args.audiogmm_args:
        print(f"audiogmm args: {args.audiogmm_args}")
    print(f"total {time.perf_counter() - t_start:.0f} s")
    print("targets:")
    print(f"  --help < 0.3 s: {h['help_s']:.3f} s -> {'met' if h['help_s'] < 0.3 else 'MISSED'}")
    largest = max(rows, key=lambda r: (r["audio_s"] or 0, r.get("N", 0))) if rows else None
    for r in rows:
        need = 5.0 if r is largest and len(rows) > 1 else 4.0
        msg = f"  {r['dataset']}: "
        if "ratio" in r:
            acc_ok = r["ours_accuracy"] >= r["ref_accuracy"]
            verdict = "met" if r["ratio"] >= need and acc_ok else "MISSED"
            msg += (
                f"{r['ref']} script / audiogmm {r['ratio']:.2f} (>= {need:g}"
                + (", largest by audio" if need == 5.0 else "")
                + f"), accuracy {r['ours_accuracy']:.3f} vs {r['ref_accuracy']:.3f} -> {verdict}; "
            )
        if "cache_empty_over_none" in r:
            e, f = r["cache_empty_over_none"], r["cache_full_over_none"]
            ec, fc = r["cache_empty_over_none_cpu"], r["cache_full_over_none_cpu"]
            msg += (f"train --cache empty/none {e:.2f} (cpu {ec:.2f}; <= 1.15), filled/none "
                    f"{f:.2f} (cpu {fc:.2f}; <= 0.5) -> "
                    f"{'met' if e <= 1.15 and f <= 0.5 else 'MISSED'}")  # fmt: skip
        if "ours_cold_over_warm" in r:
            c = r["ours_cold_over_warm"]
            msg += f"; cold/warm {c:.2f} (<= 1.5) -> {'met' if c <= 1.5 else 'MISSED'}"
        print(msg)

if __name__ == "__main__":
    main()
