"""Benchmark: the backends (ml, map, gsv, ivector) side by side: accuracy, EER, Cllr, training time.

Every configuration runs as fresh command-line processes on the same explicit-split
manifests (per class, 70/30; one per ``--seeds`` value; written to a temporary folder)::

    audiogmm train MANIFEST --split train -o M.npz --json [OPTIONS]
    audiogmm evaluate M.npz MANIFEST --split test --json
    audiogmm verify M.npz TRIALS --json

where TRIALS pairs every test clip with every class of the model (target when the
class is the clip's own), so the EER is over all test-clip x class trials. OPTIONS per
configuration (``--configs``): ``defaults`` (none: gsv at a UBM of 64 since session 19),
``ml`` (``--backend ml``, the default before; its verify scores are each class against the
others), ``ml-cal`` (``--backend ml --calibrate``), ``auto`` (``--preset auto --components
auto``), ``auto-map`` (the same with ``--backends map``), ``auto-gsv`` (``--backends
map,gsv``), ``map`` (``--backend map``, UBM 64), ``gsv`` (``--backend gsv``, UBM 64; 256
before session 19), ``ivector`` (``--backend ivector``, UBM 256, rank 100), with ``-k 256``
(``map256``, ``gsv256``) or 64 (``ivector64``), and with ``--preset speech -k 256``
(``map-speech256``, ``gsv-speech256``, ``ivector-speech256``); ``gsv-speaker`` is gsv on
``--preset speaker`` (``gsv-speaker256`` at 256).

Reported per configuration: accuracy pooled over the splits with its 95% Wilson
interval, the accuracy of each split, EER, minDCF(0.01), Cllr and minCllr of the
verify scores (pooled over the splits' trials), and the median ``train`` wall time with
its ratio to ``ml``'s, and its CPU time (user + sys; less disturbed by a busy machine).
Features are extracted into a feature cache first (untimed), so the train times compare
the backends, not the front end.

Data: ``--data NAME=PATH`` (repeatable; a folder per label or a path,label[,split]
CSV); default ``data_samples/speakers``.

Run::

    python benchmarks/bench_backends.py
    python benchmarks/bench_backends.py --data hard=$HOME/.cache/audiogmm/devcorpus/hardspeakers \
        --train-count 8 --seeds 0,1,2 --configs ml,map,gsv,gsv256
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import sys
import tempfile
from typing import Any

from _cli_common import (
    SAMPLES,
    Dataset,
    audiogmm_exe,
    base_env,
    parse_data_overrides,
    run,
    wilson,
    write_manifest,
)
from _common import emit, rnd, table

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from audiogmm.scoring.verification import cllr, eer, min_cllr, min_dcf  # noqa: E402

SPEECH256 = ["--preset", "speech", "-k", "256"]
CONFIGS: dict[str, list[str]] = {
    "defaults": [],
    "ml": ["--backend", "ml"],
    "ml-cal": ["--backend", "ml", "--calibrate"],
    "auto": ["--preset", "auto", "--components", "auto"],
    "auto-map": ["--preset", "auto", "--components", "auto", "--backends", "map"],
    "auto-gsv": ["--preset", "auto", "--components", "auto", "--backends", "map,gsv"],
    "map": ["--backend", "map"],
    "gsv": ["--backend", "gsv"],
    "map256": ["--backend", "map", "-k", "256"],
    "gsv256": ["--backend", "gsv", "-k", "256"],
    "gsv-speaker": ["--backend", "gsv", "--preset", "speaker"],
    "gsv-speaker256": ["--backend", "gsv", "--preset", "speaker", "-k", "256"],
    "gsv-speaker+ml": ["--backend", "gsv+ml", "--preset", "speaker+general"],
    "map-speech256": ["--backend", "map", *SPEECH256],
    "gsv-speech256": ["--backend", "gsv", *SPEECH256],
    "ivector": ["--backend", "ivector"],
    "ivector64": ["--backend", "ivector", "-k", "64"],
    "ivector-speech256": ["--backend", "ivector", *SPEECH256],
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", action="append", metavar="NAME=PATH", help="data set (repeatable)")
    p.add_argument("--configs", default="ml,map,gsv", help=f"subset of: {', '.join(CONFIGS)}")
    p.add_argument("--seeds", default="0", help="comma-separated split seeds (pooled)")
    p.add_argument("--train-count", type=int, metavar="N",
                   help="N training files per class (the rest test) instead of 70/30")  # fmt: skip
    p.add_argument("--json-out", metavar="PATH", help="append the JSON lines to PATH")
    args = p.parse_args()
    args.config_list = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in args.config_list if c not in CONFIGS]
    if bad:
        p.error(f"unknown configuration(s) {bad}; choose from {list(CONFIGS)}")
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    return args


def recount(manifest: str, n_train: int, seed: int) -> tuple[int, int]:
    """Rewrite ``manifest``'s split: ``n_train`` files per label in training (at least one
    test file), each label's sorted paths shuffled with ``random.Random(f"{seed}:{label}")``."""
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_label: dict[str, list[str]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r["path"])
    train = set()
    for label, paths in by_label.items():
        paths = sorted(paths)
        random.Random(f"{seed}:{label}").shuffle(paths)
        train.update(paths[: min(n_train, len(paths) - 1)])
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        w.writerows(
            (r["path"], r["label"], "train" if r["path"] in train else "test") for r in rows
        )
    return len(train), len(rows) - len(train)


def write_trials(manifest: str, labels: list[str], out: str) -> None:
    """Every test clip of ``manifest`` against every label: ``path,claim,target``."""
    with open(manifest, newline="", encoding="utf-8") as f:
        test = [(r["path"], r["label"]) for r in csv.DictReader(f) if r["split"] == "test"]
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "claim", "target"])
        w.writerows((p, c, int(c == y)) for p, y in test for c in labels)


def presets_of(name: str) -> list[list[str]]:
    """The feature presets of configuration ``name`` (one per member of a fusion; none
    for the default or ``auto``)."""
    opts = CONFIGS[name]
    if "--preset" not in opts or opts[opts.index("--preset") + 1] == "auto":
        return [[]]
    return [["--preset", p] for p in opts[opts.index("--preset") + 1].split("+")]


def run_config(name: str, ds: Dataset, folder: str, cache: list[str]) -> dict[str, Any]:
    exe, env = audiogmm_exe(), base_env()
    model = os.path.join(folder, f"{name}.npz")
    tr = run([exe, "train", ds.csv, "--split", "train", "-o", model, "--json", *CONFIGS[name],
              *cache], env, check=False)  # fmt: skip
    if tr.returncode != 0:
        return {"status": "error", "detail": tr.last_error()}
    ev = run([exe, "evaluate", model, ds.csv, "--split", "test", "--json", *cache], env,
             check=False)  # fmt: skip
    if ev.returncode != 0:
        return {"status": "error", "detail": ev.last_error()}
    tj, res = tr.json(), ev.json()
    out = {"status": "ok", "train_s": tr.seconds, "train_cpu_s": tr.cpu_s, "accuracy": res["accuracy"], "n": res["n"],
           "model": f"K={tj['n_components']} D={tj['n_dims']}", "y": [], "s": []}  # fmt: skip
    trials = os.path.join(folder, f"{name}-trials.csv")
    write_trials(ds.csv, tj["labels"], trials)
    vr = run([exe, "verify", model, trials, "--json", *cache], env, check=False)
    if vr.returncode != 0:
        return {**out, "status": "error", "detail": vr.last_error()}
    t = vr.json()["trials"]
    out["y"], out["s"] = [x["target"] for x in t], [x["score"] for x in t]
    return out


def main() -> None:
    args = parse_args()
    sets = parse_data_overrides(args.data) or [
        Dataset("samples-speakers", os.path.join(SAMPLES, "speakers"))
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        for ds in sets:
            res: dict[str, list[dict[str, Any]]] = {c: [] for c in args.config_list}
            for seed in args.seed_list:
                folder = os.path.join(tmp, f"{ds.name}-{seed}")
                write_manifest(ds, folder, seed=seed)
                if args.train_count:
                    ds.n_train, ds.n_test = recount(ds.csv, args.train_count, seed)
                print(f"{ds.name} (seed {seed}): {ds.n_classes} classes, {ds.n_train} train / "
                      f"{ds.n_test} test files", flush=True)  # fmt: skip
                cache = ["--cache", os.path.join(tmp, "cache")]
                for preset in {tuple(p) for c in args.config_list for p in presets_of(c)}:
                    # untimed: the cache filled, so that train times compare the backends
                    run([audiogmm_exe(), "-q", "extract", ds.csv, *preset, *cache], base_env())
                for name in args.config_list:
                    r = run_config(name, ds, folder, cache)
                    res[name].append(r)
                    print(f"  {name:>14}: " + (
                        f"train {r['train_s']:6.1f} s  acc {r['accuracy']:.3f}"
                        if r["status"] == "ok" else r["detail"]), flush=True)  # fmt: skip
            ok_ml = [r["train_s"] for r in res.get("ml", []) if r["status"] == "ok"]
            base = statistics.median(ok_ml) if ok_ml else None
            for name in args.config_list:
                runs = [r for r in res[name] if r["status"] == "ok"]
                row: dict[str, Any] = {"bench": "backends", "dataset": ds.name, "config": name,
                                       "options": " ".join(CONFIGS[name]),
                                       "n_classes": ds.n_classes, "seeds": args.seed_list}  # fmt: skip
                if len(runs) < len(res[name]):
                    row.update(status="error", acc_text="error: " + next(
                        r["detail"] for r in res[name] if r["status"] != "ok"))  # fmt: skip
                    rows.append(row)
                    continue
                n = sum(r["n"] for r in runs)
                k = sum(round(r["accuracy"] * r["n"]) for r in runs)
                lo, hi = wilson(k, n)
                tr = statistics.median(r["train_s"] for r in runs)
                cpu = statistics.median(r["train_cpu_s"] for r in runs)
                row.update(status="ok", accuracy=rnd(k / n), ci_low=rnd(lo), ci_high=rnd(hi),
                           n_test_pooled=n, train_s=rnd(tr), train_cpu_s=rnd(cpu), model=runs[-1]["model"],
                           acc_text=f"{k / n:.3f} [{lo:.3f}, {hi:.3f}]",
                           seed_text=" ".join(f"{r['accuracy']:.3f}" for r in runs),
                           train_ratio=rnd(tr / base, 2) if base else None)  # fmt: skip
                y = [v for r in runs for v in r["y"]]
                s = [v for r in runs for v in r["s"]]
                if y:
                    row.update(eer=rnd(eer(y, s)[0]), min_dcf_001=rnd(min_dcf(y, s, p_target=0.01)[0]),
                               cllr=rnd(cllr(y, s)), min_cllr=rnd(min_cllr(y, s)),
                               n_trials=len(y))  # fmt: skip
                rows.append(row)
                emit(row, args.json_out)
    print(table(rows, [
        ("dataset", "dataset", "s"), ("config", "config", "s"), ("model", "model", "s"),
        ("acc_text", "accuracy [95% CI]", "s"), ("seed_text", "per split", "s"),
        ("eer", "EER", ".4f"), ("min_dcf_001", "minDCF(0.01)", ".4f"), ("cllr", "Cllr", ".3f"),
        ("min_cllr", "minCllr", ".3f"), ("train_s", "train s", ".1f"), ("train_cpu_s", "train CPU s", ".1f"),
        ("train_ratio", "x ml", ".2f"),
    ]))  # fmt: skip


if __name__ == "__main__":
    main()
