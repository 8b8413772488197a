"""``evaluate`` on a Kaldi directory with ``feats.scp`` (or ``wav.scp`` + ``segments``):
:mod:`audiogmm.pipeline.kaldi`, printed as the audio commands print (``train`` reads
such a directory through :func:`audiogmm.pipeline.sources.open_clips`)."""

from __future__ import annotations

from typing import Optional

import click

from .options import echo_json


def evaluate_kaldi_dir(
    model: str, data: str, *, split: Optional[str], train_fraction: Optional[float],
    seed: Optional[int], allow_train_overlap: bool, report_dir: Optional[str], as_json: bool,
) -> None:  # fmt: skip
    """``audiogmm evaluate MODEL KALDI_DIR``: score feats.scp (or segment) features."""
    from ..pipeline.kaldi import evaluate_kaldi
    from ..pipeline.report import format_confusion, format_metrics, write_report

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
