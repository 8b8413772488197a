"""Benchmark: accuracy of audiogmm's presets and of the two reference scripts, side by side.

Every configuration runs as fresh command-line processes on the same explicit-split
manifests (per class, 70/30, or 45/55 for ``realsounds/``, or 8 training clips per speaker
for ``hardspeakers/``; one per ``--seeds`` value, default 0; written to a temporary folder):

* audiogmm: ``audiogmm train MANIFEST --split train -o M.npz --json [OPTIONS]`` then
  ``audiogmm evaluate M.npz MANIFEST --split test --json``, with OPTIONS one of:
  ``defaults`` (none: the ``general`` preset, GMM supervectors of a UBM of 64, the default
  since session 19), ``ml`` (``--backend ml``: one 16-component GMM per class, the default
  before), the presets with the ml backend, as measured before session 19: ``speech``,
  ``dcase2016``, ``librosa``, ``sound`` (``--backend ml --preset NAME``) and ``split-init``
  (``--backend ml --init split``); ``auto`` (``--preset auto --components auto``: the default
  its base, gsv on the speaker front end among its candidates on files sampled at 16 kHz or
  below), ``auto-ml`` (the same with ``--backend ml``: ml models only), ``auto-map``
  (``--backends map``), ``auto-gsv`` (``--backends map,gsv``), ``auto-gsv-only``
  (``--backends gsv``), ``gsv`` (``--backend gsv``: the default), ``gsv-256`` (at a UBM of
  256), ``gsv-speaker`` (``--backend gsv --preset speaker``), ``gsv-speaker-256`` and
  ``gsv-speaker+ml`` (its late fusion with ml on the default front end:
  ``--backend gsv+ml --preset speaker+general``), ``gsv+ml`` (the default's late fusion with
  ml, both on the default front end: ``--backend gsv+ml``);
* the reference script ``benchmarks/reference/sklearn_gmm.py`` (librosa + scikit-learn,
  16 diagonal components per class): ``ref-librosa`` (``--frontend librosa``: librosa's
  default MFCC, no deltas, no CMVN) and ``ref-speech`` (``--frontend speech``: 25/10 ms
  MFCC + delta + delta-delta + per-clip CMVN).

A configuration the CLI does not support (usage error, exit code 2) is reported as
"n/a (not available)"; another error as "error" with its last stderr line.

Data: the development corpus (``$AUDIOGMM_DEVCORPUS`` or ``~/.cache/audiogmm/devcorpus``),
``sounds/``, ``speakers/``, ``speakers8k/``, ``realsounds/`` and ``hardspeakers/``
separately (``--sets`` picks some); ``--data NAME=PATH`` (repeatable) replaces it; without either, ``data_samples/`` is used
with a warning (its test sets are 35-36 clips, so the intervals are wide).

Reported per configuration: accuracy pooled over the splits (every test decision counts
once) with its 95% Wilson interval, the accuracy of each split, balanced accuracy
(mean per-class recall, averaged over the splits), wall time of train + evaluate (median
over the splits and ``--repeats``), and the ratio of the ``auto`` train time to the
``defaults`` train time, in wall time and in CPU time (user + system of the process: on a
shared machine the other processes' load moves the first, not the second). Before the timed runs, one untimed warm-up of ``defaults`` and
``ref-speech`` on ``data_samples/speakers`` fills the numba and .pyc caches
(``--no-warmup`` skips it).

Run::

    python benchmarks/bench_accuracy.py
    python benchmarks/bench_accuracy.py --configs defaults,auto,ref-speech
    python benchmarks/bench_accuracy.py --seeds 0,1,2     # three splits, pooled
    python benchmarks/bench_accuracy.py --sets dev-hardspeakers --configs defaults,ref-librosa,ref-speech
    python benchmarks/bench_accuracy.py --data spk=data_samples/speakers --quick
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import tempfile
import time
from typing import Any

from _cli_common import (
    SAMPLES,
    Dataset,
    audiogmm_exe,
    base_env,
    devcorpus_datasets,
    parse_data_overrides,
    reference_cmd,
    run,
    wilson,
    write_manifest,
)
from _common import emit, rnd, table

# name -> (side, extra train options or reference front end)
CONFIGS: dict[str, tuple[str, list[str]]] = {
    "defaults": ("audiogmm", []),
    # the default before session 19, and the presets as measured with it
    "ml": ("audiogmm", ["--backend", "ml"]),
    "speech": ("audiogmm", ["--backend", "ml", "--preset", "speech"]),
    "dcase2016": ("audiogmm", ["--backend", "ml", "--preset", "dcase2016"]),
    "librosa": ("audiogmm", ["--backend", "ml", "--preset", "librosa"]),
    "sound": ("audiogmm", ["--backend", "ml", "--preset", "sound"]),
    "split-init": ("audiogmm", ["--backend", "ml", "--init", "split"]),
    "auto": ("audiogmm", ["--preset", "auto", "--components", "auto"]),
    "auto-ml": ("audiogmm", ["--preset", "auto", "--components", "auto", "--backend", "ml"]),
    "auto-map": ("audiogmm", ["--preset", "auto", "--components", "auto", "--backends", "map"]),
    "auto-gsv": ("audiogmm", ["--preset", "auto", "--components", "auto", "--backends", "map,gsv"]),
    "auto-gsv-only": ("audiogmm", ["--preset", "auto", "--components", "auto", "--backends", "gsv"]),
    "gsv": ("audiogmm", ["--backend", "gsv"]),
    "gsv-256": ("audiogmm", ["--backend", "gsv", "-k", "256"]),
    "gsv-speaker": ("audiogmm", ["--backend", "gsv", "--preset", "speaker"]),
    "gsv-speaker-256": ("audiogmm", ["--backend", "gsv", "--preset", "speaker", "-k", "256"]),
    "gsv-speaker+ml": ("audiogmm", ["--backend", "gsv+ml", "--preset", "speaker+general"]),
    "gsv+ml": ("audiogmm", ["--backend", "gsv+ml"]),
    "ref-librosa": ("reference", ["librosa"]),
    "ref-speech": ("reference", ["speech"]),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="data_samples/speakers only, 1 repeat")
    p.add_argument("--json-out", metavar="PATH", help="append the JSON lines to PATH")
    p.add_argument("--repeats", type=int, default=1, help="timed repeats per configuration")
    p.add_argument(
        "--configs", default=",".join(CONFIGS),
        help=f"comma-separated subset of: {', '.join(CONFIGS)}",
    )  # fmt: skip
    p.add_argument("--data", action="append", metavar="NAME=PATH", help="data set (repeatable)")
    p.add_argument("--sets", metavar="LIST",
                   help="comma-separated subset of the data sets, e.g. dev-hardspeakers")  # fmt: skip
    p.add_argument(
        "--audiogmm-args", default="", metavar="ARGS",
        help='extra arguments for both audiogmm commands, e.g. "-j 1"',
    )  # fmt: skip
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up")
    p.add_argument(
        "--seeds", default="0", metavar="LIST",
        help="comma-separated split seeds: every configuration runs on each split, and the "
        "accuracy is pooled over them (default 0)",
    )  # fmt: skip
    args = p.parse_args()
    try:
        args.seed_list = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not args.seed_list:
        p.error("--seeds is empty")
    args.config_list = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.config_list if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    return args


def datasets(args) -> list[Dataset]:
    found = all_datasets(args)
    if args.sets:
        wanted = args.sets.split(",")
        unknown = sorted(set(wanted) - {ds.name for ds in found})
        if unknown:
            raise SystemExit(f"--sets: unknown {unknown}; choose from {[d.name for d in found]}")
        found = [ds for ds in found if ds.name in wanted]
    return found


def all_datasets(args) -> list[Dataset]:
    over = parse_data_overrides(args.data)
    if over:
        return over
    if args.quick:
        return [Dataset("samples-speakers", os.path.join(SAMPLES, "speakers"))]
    found, msg = devcorpus_datasets(prefix="dev-")
    if found:
        return sorted(found, key=lambda d: d.name != "dev-sounds")  # sounds first
    print(f"WARNING: {msg.split(':')[0]}; falling back to data_samples/ (small test sets)")
    return [
        Dataset("samples-sounds", os.path.join(SAMPLES, "sounds")),
        Dataset("samples-speakers", os.path.join(SAMPLES, "speakers")),
    ]


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (the load of the other
    processes on a shared machine changes wall times, not this)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_config(name: str, ds: Dataset, model: str, extra: list[str]) -> dict[str, Any]:
    side, opts = CONFIGS[name]
    env = base_env()
    if side == "reference":
        r = run(reference_cmd(ds.csv, opts[0]), env, check=False)
        if r.returncode != 0:
            return {"status": "error", "detail": r.last_error()}
        res = r.json()
        return {
            "status": "ok", "s": r.seconds, "train_s": None, "train_cpu_s": None, "evaluate_s": None,
            "accuracy": res["accuracy"], "balanced_accuracy": res.get("balanced_accuracy"),
            "n": res["n_test"], "detail": f"stages {res['stages']}",
            "model": "K=16 D=60" if opts[0] == "speech" else "K=16 D=20",
        }  # fmt: skip
    exe = audiogmm_exe()
    cpu0 = _children_cpu()
    tr = run(
        [exe, "train", ds.csv, "--split", "train", "-o", model, "--json", *opts, *extra],
        env, check=False,
    )  # fmt: skip
    train_cpu = _children_cpu() - cpu0
    if tr.returncode == 2:
        return {"status": "n/a", "detail": "n/a (not available): " + tr.last_error()}
    if tr.returncode != 0:
        return {"status": "error", "detail": tr.last_error()}
    ev = run(
        [exe, "evaluate", model, ds.csv, "--split", "test", "--json", *extra], env, check=False
    )
    if ev.returncode != 0:
        return {"status": "error", "detail": ev.last_error()}
    tj, res = tr.json(), ev.json()
    bal = res.get("balanced_accuracy")
    if bal is None:  # older evaluate output: mean per-class recall from the confusion matrix
        m = res["confusion"]["matrix"]
        recalls = [row[i] / sum(row) for i, row in enumerate(m) if sum(row)]
        bal = sum(recalls) / len(recalls)
    return {
        "status": "ok", "s": tr.seconds + ev.seconds, "train_s": tr.seconds,
        "train_cpu_s": train_cpu,
        "evaluate_s": ev.seconds, "accuracy": res["accuracy"], "balanced_accuracy": bal,
        "n": res["n"],
        "detail": f"model {tj.get('model')}",
        "model": f"K={tj.get('n_components')} D={tj.get('n_dims')}",
    }  # fmt: skip


def main() -> None:
    args = parse_args()
    t_start = time.perf_counter()
    extra = shlex.split(args.audiogmm_args)
    repeats = 1 if args.quick else max(1, args.repeats)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-acc-") as tmp:
        if not args.no_warmup:
            w = write_manifest(Dataset("warmup", os.path.join(SAMPLES, "speakers")),
                               os.path.join(tmp, "warmup"))  # fmt: skip
            print("warm-up (untimed) ...", flush=True)
            for name in ("defaults", "ref-speech"):
                run_config(name, w, os.path.join(tmp, "warmup.npz"), extra)
        for ds in datasets(args):
            res: dict[str, list[dict[str, Any]]] = {c: [] for c in args.config_list}
            per_seed: dict[str, list[dict[str, Any]]] = {c: [] for c in args.config_list}
            for seed in args.seed_list:
                write_manifest(ds, os.path.join(tmp, f"{ds.name}-{seed}"), seed=seed)
                print(
                    f"{ds.name} (split seed {seed}): {ds.source}: {ds.n_classes} classes, "
                    f"{ds.n_train} train / {ds.n_test} test files, {ds.audio_s:.0f} s of audio",
                    flush=True,
                )  # fmt: skip
                for rep in range(repeats):
                    order = args.config_list if rep % 2 == 0 else args.config_list[::-1]
                    for name in order:
                        if res[name] and res[name][-1]["status"] != "ok":
                            continue  # n/a or error: do not retry
                        model = os.path.join(tmp, f"{ds.name}-{seed}-{name}.npz")
                        r = run_config(name, ds, model, extra)
                        res[name].append(r)
                        if rep == 0:
                            per_seed[name].append(r)
                        print(f"  {name:>12}: " + (
                            f"{r['s']:7.2f} s  acc {r['accuracy']:.3f}" if r["status"] == "ok"
                            else r["detail"]), flush=True)  # fmt: skip
            med = {}
            for name in args.config_list:
                ok = [r for r in res[name] if r["status"] == "ok"]
                med[name] = {
                    k: (statistics.median(r[k] for r in ok) if ok and ok[0][k] is not None else None)
                    for k in ("s", "train_s", "train_cpu_s", "evaluate_s")
                }
            base = med.get("defaults", {})
            for name in args.config_list:
                last = res[name][-1]
                row: dict[str, Any] = {
                    "bench": "cli_accuracy", "dataset": ds.name, "config": name,
                    "side": CONFIGS[name][0], "N": ds.n_train + ds.n_test, "D": None, "K": None,
                    "dtype": None, "n_classes": ds.n_classes, "n_train": ds.n_train,
                    "n_test": ds.n_test, "status": last["status"], "detail": last.get("detail"),
                    "audiogmm_args": args.audiogmm_args, "repeats": repeats,
                    "seeds": args.seed_list,
                }  # fmt: skip
                if last["status"] == "ok":
                    # pooled over the splits: every test decision counts once
                    runs = per_seed[name]
                    n = sum(int(r["n"]) for r in runs)
                    correct = sum(round(float(r["accuracy"]) * int(r["n"])) for r in runs)
                    acc = correct / n
                    lo, hi = wilson(correct, n)
                    row.update({
                        "accuracy": rnd(acc), "ci_low": rnd(lo), "ci_high": rnd(hi),
                        "per_seed_accuracy": [rnd(r["accuracy"]) for r in runs],
                        "n_test_pooled": n,
                        "balanced_accuracy": rnd(
                            statistics.mean(r["balanced_accuracy"] for r in runs)
                        ),
                        "wall_s": rnd(med[name]["s"]), "train_s": rnd(med[name]["train_s"]),
                        "evaluate_s": rnd(med[name]["evaluate_s"]), "model": last["model"],
                    })  # fmt: skip
                    for key, out in (("train_s", "auto_over_defaults_train"),
                                     ("train_cpu_s", "auto_over_defaults_train_cpu")):
                        if name.startswith("auto") and base.get(key) and med[name][key]:
                            row[out] = rnd(med[name][key] / base[key], 2)
                    row["acc_text"] = f"{acc:.3f} [{lo:.3f}, {hi:.3f}]"
                    row["seed_text"] = " ".join(f"{r['accuracy']:.3f}" for r in runs)
                else:
                    row["acc_text"] = "n/a (not available)" if last["status"] == "n/a" else "error"
                row.setdefault("seed_text", "")
                emit({k: v for k, v in row.items() if k not in ("acc_text", "seed_text")},
                     args.json_out)  # fmt: skip
                rows.append(row)

    print()
    for ds_name in dict.fromkeys(r["dataset"] for r in rows):
        sub = [r for r in rows if r["dataset"] == ds_name]
        print(f"{ds_name} ({sub[0]['n_classes']} classes, {sub[0]['n_test']} test files per "
              f"split, split seeds {args.seed_list})")  # fmt: skip
        print(
            table(
                sub,
                [
                    ("config", "config", "s"), ("model", "model", "s"), ("acc_text", "accuracy [95% Wilson]", "s"),
                    ("seed_text", "per split", "s"),
                    ("balanced_accuracy", "balanced acc", ".3f"), ("wall_s", "wall s", ".2f"),
                    ("train_s", "train s", ".2f"), ("evaluate_s", "eval s", ".2f"),
                ],
            )  # fmt: skip
        )
        for r in sub:
            if "auto_over_defaults_train" in r:
                print(f"auto train time / defaults train time: {r['auto_over_defaults_train']:.2f} "
                      f"(CPU time: {r.get('auto_over_defaults_train_cpu', float('nan')):.2f})")
            if r["status"] == "error":
                print(f"{r['config']}: error: {r['detail']}")
        print()
    print(
        f"total {time.perf_counter() - t_start:.0f} s; reference wall time is one process "
        "(train + test); audiogmm's is train + evaluate"
    )


if __name__ == "__main__":
    main()
