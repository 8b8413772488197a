"""``train`` and ``evaluate`` on a Kaldi directory with ``feats.scp`` (or ``wav.scp`` +
``segments``): :mod:`audiogmm.pipeline.kaldi`, printed as the audio commands print."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import click

from .options import echo_json


def train_kaldi_dir(
    ctx: click.Context, data: str, output: str, *, split: Optional[str], train_fraction: float,
    seed: int, config, jobs: Optional[int], fit: dict[str, Any], check: Callable[[Any], Any],
) -> dict[str, Any]:  # fmt: skip
    """``audiogmm train KALDI_DIR``: features from feats.scp (or segments), no audio cache.

    ``fit`` holds the backend and its parameters; ``check`` maps the directory's front
    end to the one to save (e.g. refusing one that differs from a given UBM's).
    """
    from ..data import RunOptions
    from ..pipeline.kaldi import load_kaldi_split, save_kaldi_model, train_kaldi
    from .options import progress_for

    skipped: list[dict[str, str]] = []
    utts, used_config = load_kaldi_split(
        data, split, train_fraction=train_fraction, seed=seed, config=config, skipped=skipped
    )
    used_config = check(used_config)
    opts = RunOptions(n_jobs=jobs, progress=progress_for(ctx))
    clf = train_kaldi(utts, options=opts, **fit)
    save_kaldi_model(
        output, clf, used_config, data_dir=data, split=split,
        train_fraction=train_fraction, seed=seed, utterances=utts,
    )  # fmt: skip
    return {
        "classifier": clf, "n_files": len(utts), "unit": "utterance", "skipped": skipped,
        "feature_config": None if used_config is None else used_config.to_dict(),
        "note": "" if used_config else " (Kaldi features: evaluate on feats.scp, no audio predict)",
    }  # fmt: skip


def evaluate_kaldi_dir(
    model: str, data: str, *, split: Optional[str], train_fraction: Optional[float],
    seed: Optional[int], allow_train_overlap: bool, report_dir: Optional[str], as_json: bool,
) -> None:  # fmt: skip
    """``audiogmm evaluate MODEL KALDI_DIR``: score feats.scp (or segment) features."""
    from ..pipeline import format_confusion, format_metrics, write_report
    from ..pipeline.kaldi import evaluate_kaldi

    res = evaluate_kaldi(
        model, data, split=split, train_fraction=train_fraction, seed=seed,
        allow_train_overlap=allow_train_overlap,
    )  # fmt: skip
    if report_dir:
        write_report(report_dir, res)
        click.echo(f"report: {report_dir}", err=True)
    if as_json:
        echo_json({k: v for k, v in res.items() if k != "predictions"})
        return
    click.echo(format_confusion(res["confusion"]["labels"], res["confusion"]["matrix"]), nl=False)
    click.echo(format_metrics(res), nl=False)
    click.echo(f"{res['n']} utterances scored")
