"""Numbered experiment stages for the recipes: prepare -> extract -> train -> evaluate -> report.

Stages communicate only through files in the experiment folder (Kaldi habit),
so any stage can be re-run or inspected on its own::

    exp/
      cmd.txt            the command line that ran
      settings.json      every setting of the run (incl. the FeatureConfig)
      records.csv        stage 0: path,label,split
      features/          stage 1: feature cache (re-runs extract nothing)
      skipped.csv        stage 1: files that could not be used, with the reason
      model.npz          stage 2: the classifier
      results.json       stage 3: metrics, predictions, skipped files
      report/            stage 4: metrics.json, confusion.txt, confusion.png
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from .cache import extract_many
from .classifier import GMMClassifier
from .datasets import Record, read_manifest, select, split_records
from .features import FeatureConfig
from .io import atomic_write
from .pipeline import evaluate_classifier, train_classifier
from .report import format_confusion, write_report

__all__ = ["Experiment"]


class Experiment:
    """One experiment folder and its stages.

    Parameters
    ----------
    exp_dir : path
        Folder for every stage's output (created).
    settings : dict
        Recipe settings; must contain ``data``, ``preset`` (or ``config``),
        ``components``, ``train_fraction``, ``seed``; may contain ``jobs``,
        ``max_iter``, ``init``.
    log : callable, optional
        Where stage messages go (default: print to stdout).
    """

    def __init__(
        self,
        exp_dir: str | os.PathLike,
        settings: dict[str, Any],
        log: Callable[[str], None] | None = None,
    ):
        self.dir = os.path.abspath(os.fspath(exp_dir))
        self.s = dict(settings)
        self.log = log or (lambda m: print(m, flush=True))
        os.makedirs(self.dir, exist_ok=True)

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    def _write(self, name: str, text: str) -> None:
        atomic_write(self.path(name), lambda f: f.write(text.encode("utf-8")))

    @property
    def config(self) -> FeatureConfig:
        if self.s.get("config"):
            with open(self.s["config"], encoding="utf-8") as fh:
                return FeatureConfig.from_json(fh.read())
        return FeatureConfig.preset(self.s["preset"])

    def stage(self, n: int, name: str, fn: Callable[[], str]) -> None:
        """Run one stage, printing its number, name, result line and wall time."""
        t0 = time.perf_counter()
        self.log(f"[stage {n}] {name} ...")
        msg = fn()
        self.log(f"[stage {n}] {name}: {msg} ({time.perf_counter() - t0:.1f} s)")

    def save_settings(self, argv: list[str] | None = None) -> None:
        """Write the command line and every setting first, as Kaldi step scripts do."""
        self._write("cmd.txt", " ".join(argv if argv is not None else sys.argv) + "\n")
        settings = {**self.s, "feature_config": self.config.to_dict()}
        self._write("settings.json", json.dumps(settings, indent=2, sort_keys=True) + "\n")

    # -- stages ------------------------------------------------------------------------------

    def prepare(self) -> str:
        records = split_records(
            read_manifest(self.s["data"]),
            train_fraction=self.s["train_fraction"],
            seed=self.s["seed"],
        )
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["path", "label", "split"])
        for r in records:
            w.writerow([r.path, r.label, r.split])
        self._write("records.csv", buf.getvalue())
        n_train = sum(r.split == "train" for r in records)
        labels = sorted({r.label for r in records})
        return f"{len(records)} files, {len(labels)} labels, {n_train} train / {len(records) - n_train} test"

    def records(self) -> list[Record]:
        with open(self.path("records.csv"), encoding="utf-8", newline="") as fh:
            return [Record(r["path"], r["label"], r["split"]) for r in csv.DictReader(fh)]

    def extract(self) -> str:
        res = extract_many(
            self.records(),
            config=self.config,
            cache_dir=self.path("features"),
            n_jobs=self.s.get("jobs"),
        )
        res.write_skipped_csv(self.path("skipped.csv"))
        frames = sum(x.shape[0] for x in res.features.values())
        return (
            f"{len(res.features)} files, {frames} frames ({res.n_extracted} extracted, "
            f"{res.n_cached} cached, {res.n_skipped} skipped -> skipped.csv)"
        )

    def train(self) -> str:
        gmm = {k: self.s[k] for k in ("max_iter", "init") if self.s.get(k) is not None}
        clf, res = train_classifier(
            select(self.records(), "train"),
            config=self.config,
            n_components=self.s["components"],
            cache_dir=self.path("features"),
            n_jobs=self.s.get("jobs"),
            random_state=self.s["seed"],
            **gmm,
        )
        clf.save(self.path("model.npz"))
        iters = [r["n_iter"] for r in clf.fit_report_.values()]
        return (
            f"{len(clf.labels_)} classes x {self.s['components']} components, "
            f"{min(iters)}-{max(iters)} EM iterations -> model.npz"
        )

    def evaluate(self) -> str:
        clf = GMMClassifier.load(self.path("model.npz"))
        res = evaluate_classifier(
            clf,
            select(self.records(), "test"),
            cache_dir=self.path("features"),
            n_jobs=self.s.get("jobs"),
        )
        self._write("results.json", json.dumps(res, indent=2, sort_keys=True) + "\n")
        return f"accuracy {100 * res['accuracy']:.2f}% on {res['n']} test files ({len(res['skipped'])} skipped)"

    def report(self) -> str:
        with open(self.path("results.json"), encoding="utf-8") as fh:
            res = json.load(fh)
        metrics = {k: v for k, v in res.items() if k != "predictions"}
        files = write_report(self.path("report"), metrics)
        self.log(format_confusion(res["confusion"]["labels"], res["confusion"]["matrix"]).rstrip())
        self.log(f"ACCURACY {100 * res['accuracy']:.2f}% ({res['n']} test files)")
        return ", ".join(os.path.relpath(f, self.dir) for f in files)
