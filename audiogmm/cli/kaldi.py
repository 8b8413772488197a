"""The Kaldi data-directory branches of ``extract``, ``train`` and ``evaluate``.

``train`` and ``evaluate`` hand a directory with ``feats.scp`` (or ``wav.scp`` +
``segments``) to these functions, which run :mod:`audiogmm.pipeline.kaldi` and
print as the audio commands do.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Optional

import click

from .options import echo_json, report_skipped

logger = logging.getLogger("audiogmm")


def extract_kaldi(data, output, config, opts, allow_pipes: bool, as_json: bool) -> None:
    """``audiogmm extract --format kaldi``: feats.ark/feats.scp in ``output``."""
    from ..pipeline.kaldi import export_kaldi

    out = export_kaldi(data, output, config=config, options=opts, allow_pipes=allow_pipes)
    out["config_hash"] = config.content_hash()
    if as_json:
        echo_json(out)
        return
    report_skipped(out["skipped"])
    click.echo(
        f"{out['n_utterances']} utterances ({out['n_frames']} frames) -> {out['scp']} "
        f"({len(out['skipped'])} skipped)"
    )


def train_kaldi_dir(
    ctx: click.Context,
    data: str,
    output: str,
    *,
    split: Optional[str],
    train_fraction: float,
    seed: int,
    config,
    backend: str,
    params: dict[str, Any],
    jobs: Optional[int],
    max_iter: int,
    as_json: bool,
) -> None:
    """``audiogmm train KALDI_DIR``: features from feats.scp (or segments), no audio cache."""
    from ..data import RunOptions
    from ..exceptions import ConvergenceWarning
    from ..pipeline.kaldi import load_kaldi_split, save_kaldi_model, train_kaldi
    from .options import progress_for

    utts, used_config = load_kaldi_split(
        data, split, train_fraction=train_fraction, seed=seed, config=config
    )
    opts = RunOptions(n_jobs=jobs, progress=progress_for(ctx))
    with warnings.catch_warnings():
        # per-class ConvergenceWarnings are summarised below, naming the classes (as train does)
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = train_kaldi(utts, options=opts, backend=backend, random_state=seed, **params)
    not_conv = sorted(y for y, r in clf.fit_report_.items() if not r["converged"])
    if not_conv:
        logger.warning(
            "EM did not converge within --max-iter=%d for: %s", max_iter, ", ".join(not_conv)
        )
    save_kaldi_model(
        output, clf, used_config, data_dir=data, split=split,
        train_fraction=train_fraction, seed=seed, utterances=utts,
    )  # fmt: skip
    out = {
        "model": os.path.abspath(output),
        "labels": clf.labels_,
        "n_files": len(utts),
        "n_components": clf.n_components,
        "backend": backend,
        "n_dims": clf.n_dims,
        "skipped": [],
        "timing": clf.timing_,
        "training": clf.fit_report_,
        "feature_config": None if used_config is None else used_config.to_dict(),
    }
    if as_json:
        echo_json(out)
        return
    note = "" if used_config else " (Kaldi features: evaluate on feats.scp, no audio predict)"
    click.echo(
        f"trained {len(clf.labels_)} classes x {clf.n_components} components ({backend}) "
        f"on {len(utts)} utterances ({clf.n_dims}-dim features) -> {output}{note}"
    )


def evaluate_kaldi_dir(
    model: str,
    data: str,
    *,
    split: Optional[str],
    train_fraction: Optional[float],
    seed: Optional[int],
    allow_train_overlap: bool,
    report_dir: Optional[str],
    as_json: bool,
) -> None:
    """``audiogmm evaluate MODEL KALDI_DIR``: score feats.scp (or segment) features."""
    from ..pipeline import format_confusion, format_metrics, write_report
    from ..pipeline.kaldi import evaluate_kaldi

    res = evaluate_kaldi(
        model, data, split=split, train_fraction=train_fraction, seed=seed,
        allow_train_overlap=allow_train_overlap,
    )  # fmt: skip
    res["skipped"] = []
    if report_dir:
        write_report(report_dir, res)
    if as_json:
        echo_json({k: v for k, v in res.items() if k != "predictions"})
        return
    click.echo(format_confusion(res["confusion"]["labels"], res["confusion"]["matrix"]), nl=False)
    click.echo(format_metrics(res), nl=False)
    click.echo(f"{res['n']} utterances scored")
