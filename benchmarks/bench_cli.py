"""Benchmark: what users type. ``audiogmm train`` + ``audiogmm evaluate`` vs the librosa+sklearn script.

Each side is a fresh process timed as a whole (wall clock, ``time.perf_counter`` around
``subprocess.run``), so imports, worker start-up, JIT caches and file reading all count:

* audiogmm (two processes; the sum is audiogmm's time, accuracy from ``--json``)::

      audiogmm train MANIFEST --split train -o M.npz [--audiogmm-args]
      audiogmm evaluate M.npz MANIFEST --split test --json [--audiogmm-args]

* reference (one process, ``benchmarks/reference/sklearn_gmm.py``: librosa MFCC 25/10 ms +
  delta + delta-delta + per-clip CMVN, one ``GaussianMixture(16, "diag")`` per class)::

      python benchmarks/reference/sklearn_gmm.py MANIFEST --frontend speech --json

Data, three sizes of real audio: small = ``data_samples/speakers``, medium =
``data_samples/sounds``, large = the development corpus (``$AUDIOGMM_DEVCORPUS`` or
``~/.cache/audiogmm/devcorpus``, its ``speakers/`` and ``sounds/``; skipped with a message
when absent). ``--data NAME=PATH`` (repeatable) replaces that list. For each data set a
CSV manifest with an explicit split column (70/30 per class, seed 0) is written to a
temporary folder, so both sides train and test on exactly the same files.

Warm and cold:

* warm: ordinary runs, after one untimed warm-up run of each side;
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

Repeats are interleaved (warm audiogmm, warm reference, cold audiogmm, cold reference; the
order of the two sides alternates between repeats) and medians are reported.
``audiogmm --help`` is timed as a fresh process too (the import cost of the CLI).

Targets: ``--help`` < 0.3 s; audiogmm cold <= 1.5x warm; reference / audiogmm (warm)
>= 4x at every size and >= 5x at the largest, at equal or better accuracy.

Run::

    python benchmarks/bench_cli.py --quick          # small data, 1 repeat
    python benchmarks/bench_cli.py                  # all sizes, 3 repeats
    python benchmarks/bench_cli.py --audiogmm-args "-j 1" --data spk=data_samples/speakers
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import tempfile
import time
from typing import Any

from _cli_common import (
    SAMPLES,
    ColdCaches,
    Dataset,
    audiogmm_exe,
    base_env,
    devcorpus_datasets,
    parse_data_overrides,
    reference_cmd,
    run,
    write_manifest,
)
from _common import emit, rnd, table

# ColdCaches(numba, pkg, all_pyc) per cold mode
COLD_MODES = {
    "cold": (True, True, False),
    "cold_numba": (True, False, False),
    "cold_pyc": (False, True, False),
    "cold_allpyc": (True, True, True),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="1 repeat, small data only")
    p.add_argument("--json-out", metavar="PATH", help="append the JSON lines to PATH")
    p.add_argument("--repeats", type=int, default=3, help="timed warm repeats (median)")
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
    return p.parse_args()


def datasets(args) -> list[Dataset]:
    over = parse_data_overrides(args.data)
    if over:
        return over
    out = [Dataset("small", os.path.join(SAMPLES, "speakers"))]
    if args.quick:
        return out
    out.append(Dataset("medium", os.path.join(SAMPLES, "sounds")))
    large, msg = devcorpus_datasets()
    if msg:
        print(msg, flush=True)
    return out + large


def run_audiogmm(ds: Dataset, model: str, extra: list[str], env) -> dict[str, Any]:
    exe = audiogmm_exe()
    tr = run([exe, "train", ds.csv, "--split", "train", "-o", model, *extra], env)
    ev = run([exe, "evaluate", model, ds.csv, "--split", "test", "--json", *extra], env)
    res = ev.json()
    return {
        "s": tr.seconds + ev.seconds, "train_s": tr.seconds, "evaluate_s": ev.seconds,
        "cpu_s": tr.cpu_s + ev.cpu_s,
        "accuracy": float(res["accuracy"]), "n_test": int(res["n"]),
    }  # fmt: skip


def run_reference(ds: Dataset, env) -> dict[str, Any]:
    r = run(reference_cmd(ds.csv, "speech"), env)
    res = r.json()
    return {
        "s": r.seconds, "cpu_s": r.cpu_s,
        "accuracy": float(res["accuracy"]), "n_test": int(res["n_test"]),
        "stages": res["stages"], "inner_s": res["seconds"],
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
    cold_repeats = 0 if args.no_cold else (repeats if args.cold_repeats is None else args.cold_repeats)
    model = os.path.join(tmp, ds.name + ".npz")
    modes = list(COLD_MODES) if args.cold_split else ["cold"]
    sides = {
        "ours": lambda env: run_audiogmm(ds, model, extra, env),
        "ref": lambda env: run_reference(ds, env),
    }
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
        print(f"  {ds.name:>12} {mode:>10} {side:>4}: {r['s']:6.2f} s (cpu {r['cpu_s']:6.2f} s)"
              f"  acc {r['accuracy']:.3f}", flush=True)  # fmt: skip

    print(f"{ds.name}: warm-up ...", flush=True)
    for side in sides:
        sides[side](base_env())
    for rep in range(max(repeats, cold_repeats)):
        order = ["ours", "ref"] if rep % 2 == 0 else ["ref", "ours"]
        for mode in ["warm", *modes]:
            if (mode == "warm" and rep >= repeats) or (mode != "warm" and rep >= cold_repeats):
                continue
            for side in order:
                once(side, mode)

    def med(side: str, mode: str, key: str = "s"):
        if key in ("s", "cpu_s"):
            v = (t if key == "s" else cpu)[side, mode]
            return statistics.median(v) if v else None
        return last[side, mode][key] if (side, mode) in last else None

    ours, ref = med("ours", "warm"), med("ref", "warm")
    row: dict[str, Any] = {
        "bench": "cli_end_to_end", "dataset": ds.name, "source": ds.source,
        "N": ds.n_train + ds.n_test, "D": None, "K": 16, "dtype": "float32",
        "n_classes": ds.n_classes, "n_train": ds.n_train, "n_test": ds.n_test,
        "audio_s": rnd(ds.audio_s, 1),
        "ours_s": rnd(ours), "ref_s": rnd(ref), "ratio": rnd(ref / ours, 2), "floor_s": None,
        "ours_cpu_s": rnd(med("ours", "warm", "cpu_s")), "ref_cpu_s": rnd(med("ref", "warm", "cpu_s")),
        "cpu_ratio": rnd(med("ref", "warm", "cpu_s") / med("ours", "warm", "cpu_s"), 2),
        "ours_train_s": rnd(last["ours", "warm"]["train_s"]),
        "ours_evaluate_s": rnd(last["ours", "warm"]["evaluate_s"]),
        "ref_stages": last["ref", "warm"]["stages"],
        "ours_accuracy": rnd(last["ours", "warm"]["accuracy"]),
        "ref_accuracy": rnd(last["ref", "warm"]["accuracy"]),
        "audiogmm_args": args.audiogmm_args, "repeats": repeats, "cold_repeats": cold_repeats,
    }  # fmt: skip
    for mode in modes:
        oc, rc = med("ours", mode), med("ref", mode)
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
            row["ref_cold_stages"] = last["ref", mode]["stages"]
            row["cold_ratio"] = rnd(rc / oc, 2)
    return row


def main() -> None:
    args = parse_args()
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
        ("ours_evaluate_s", "+ eval)", ".2f"), ("ref_s", "reference s", ".2f"),
        ("ratio", "ref/ours", ".2f"), ("cpu_ratio", "(cpu)", ".2f"),
        ("ours_cold_s", "audiogmm cold s", ".2f"), ("ours_cold_over_warm", "cold/warm", ".2f"),
        ("ours_cold_cpu_over_warm", "(cpu)", ".2f"), ("ref_cold_s", "ref cold s", ".2f"),
        ("ours_accuracy", "audiogmm acc", ".3f"), ("ref_accuracy", "ref acc", ".3f"),
    ]  # fmt: skip
    if args.cold_split:
        cols[14:14] = [
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
    largest = max(rows, key=lambda r: (r["audio_s"] or 0, r["N"])) if rows else None
    for r in rows:
        need = 5.0 if r is largest and len(rows) > 1 else 4.0
        acc_ok = r["ours_accuracy"] >= r["ref_accuracy"]
        verdict = "met" if r["ratio"] >= need and acc_ok else "MISSED"
        msg = (
            f"  {r['dataset']}: ref/ours {r['ratio']:.2f} (>= {need:g}"
            + (", largest by audio" if need == 5.0 else "")
            + f"), accuracy {r['ours_accuracy']:.3f} vs {r['ref_accuracy']:.3f} -> {verdict}"
        )
        if "ours_cold_over_warm" in r:
            c = r["ours_cold_over_warm"]
            msg += f"; cold/warm {c:.2f} (<= 1.5) -> {'met' if c <= 1.5 else 'MISSED'}"
        print(msg)


if __name__ == "__main__":
    main()
