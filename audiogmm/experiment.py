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

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from .cache import extract_many
from .classifier import GMMClassifier
from .datasets import Record, read_csv, read_manifest, select, split_records, write_csv
from .features import FeatureConfig
from .io import atomic_write
from .pipeline import evaluate_classifier, train_classifier
from .report import format_confusion, write_report

__all__ = ["Experiment", "recipe_command", "STAGES"]

#: The stages every classification recipe runs, in order: (number, name, one-line purpose).
STAGES = (
    (0, "prepare", "read DATA, make a stratified train/test split -> records.csv"),
    (1, "extract", "features for every file, cached -> features/, skipped.csv"),
    (2, "train", "one diagonal GMM per label -> model.npz"),
    (3, "evaluate", "classify the test files by max total log-likelihood -> results.json"),
    (4, "report", "metrics.json, confusion.txt, confusion.png -> report/"),
)


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

    @functools.cached_property
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
        write_csv(records, self.path("records.csv"))
        n_train = sum(r.split == "train" for r in records)
        labels = sorted({r.label for r in records})
        return f"{len(records)} files, {len(labels)} labels, {n_train} train / {len(records) - n_train} test"

    def records(self) -> list[Record]:
        return read_csv(self.path("records.csv"))

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

    def run(self, stage: int = 0, stop_stage: int = len(STAGES) - 1) -> None:
        """Run stages ``stage`` .. ``stop_stage`` in order (Kaldi's ``--stage`` habit)."""
        for n, name, _ in STAGES:
            if stage <= n <= stop_stage:
                self.stage(n, name, getattr(self, name))


def recipe_command(
    *, data: str, exp: str, preset: str, components: int, train_fraction: float, seed: int
):
    """The click command shared by the classification recipes; defaults come from the recipe.

    The command writes ``cmd.txt`` and ``settings.json`` first, then runs the
    requested stages of :class:`Experiment`.
    """

    @click.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option(
        "--data",
        default=data,
        show_default=True,
        type=click.Path(exists=True),
        help="Label folders, CSV or Kaldi dir.",
    )
    @click.option("--exp", "exp_dir", default=exp, show_default=True, help="Experiment folder.")
    @click.option(
        "--preset",
        default=preset,
        show_default=True,
        type=click.Choice(["speech", "dcase2016", "librosa"]),
    )
    @click.option(
        "--config",
        type=click.Path(exists=True, dir_okay=False),
        help="FeatureConfig JSON (overrides --preset).",
    )
    @click.option(
        "--components", "-k", default=components, show_default=True, type=click.IntRange(min=1)
    )
    @click.option(
        "--train-fraction",
        default=train_fraction,
        show_default=True,
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
    )
    @click.option("--seed", default=seed, show_default=True, type=int)
    @click.option(
        "--jobs",
        "-j",
        default=None,
        type=click.IntRange(min=1),
        help="Workers [default: all cores].",
    )
    @click.option("--stage", default=0, show_default=True, type=int, help="First stage to run.")
    @click.option(
        "--stop-stage",
        default=len(STAGES) - 1,
        show_default=True,
        type=int,
        help="Last stage to run.",
    )
    def command(
        data, exp_dir, preset, config, components, train_fraction, seed, jobs, stage, stop_stage
    ):
        settings = dict(data=os.path.abspath(data), preset=preset, config=config, components=components,
                        train_fraction=train_fraction, seed=seed, jobs=jobs)  # fmt: skip
        experiment = Experiment(exp_dir, settings)
        experiment.save_settings(sys.argv)
        experiment.run(stage, stop_stage)

    return command
