"""``audiogmm info``: what a model file holds."""

from __future__ import annotations

import os

import click

from .options import echo_json, json_option
from .output import escape_name


@click.command("info")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@json_option
def command(model, as_json):
    """Describe a model file: labels, sizes, feature config, training summary."""
    from ..pipeline import load_model

    bundle = load_model(model)
    clf, cfg, header = bundle.classifier, bundle.config, bundle.header
    out = {
        "file": os.path.abspath(model),
        "format_version": header["format_version"],
        "audiogmm_version": header["audiogmm_version"],
        "labels": clf.labels_,
        "n_components": int(clf.means_.shape[1]),
        "n_dims": clf.n_dims,
        "feature_config": cfg.to_dict(),
        "feature_config_hash": cfg.content_hash(),
        "training": clf.fit_report_,
    }
    if as_json:
        echo_json(out)
        return
    click.echo(f"file:          {escape_name(out['file'])}")
    click.echo(
        f"format:        audiogmm v{out['format_version']} (written by {out['audiogmm_version']})"
    )
    click.echo(f"classes:       {len(clf.labels_)}: {', '.join(map(escape_name, clf.labels_))}")
    click.echo(f"mixtures:      {out['n_components']} diagonal components x {out['n_dims']} dims")
    click.echo(
        f"features:      {cfg.sample_rate} Hz, {cfg.win_ms:g}/{cfg.hop_ms:g} ms, {cfg.n_mels} mels, "
        f"{cfg.n_mfcc} MFCC, deltas {cfg.delta_order}, VAD {'on' if cfg.vad else 'off'}, "
        f"CMVN {cfg.cmvn} (hash {out['feature_config_hash']})"
    )
    for y, r in sorted(out["training"].items()):
        if not isinstance(r, dict):
            continue
        click.echo(
            f"  {escape_name(y):<20} {r.get('n_clips', '?'):>5} clips {r.get('n_frames', '?'):>8} frames  "
            f"{r.get('n_iter', '?'):>3} it  ll/frame {r.get('final_mean_loglik', float('nan')):.3f}"
        )
