"""``audiogmm info``: what a model file holds."""

from __future__ import annotations

import os

import click

from .options import echo_json, format_selection, json_option
from .output import escape_name


@click.command("info")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@json_option
def command(model, as_json):
    """Describe a model file: labels, sizes, feature config, training summary."""
    from ..pipeline import load_model, stored_split

    bundle = load_model(model)
    split = stored_split(bundle, path=model)
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
        # the digests are for evaluate's overlap check, not for reading
        "split": None
        if split is None
        else {k: v for k, v in split.items() if k != "train_files"}
        | {"n_train_files": len(split["train_files"])},
        "selection": header.get("selection"),
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
    sp = out["split"]
    if sp is None:
        click.echo("split:         not recorded (evaluate cannot check for training files)")
    else:
        how = (
            "the manifest's split column"
            if sp["from_column"]
            else (f"seed {sp['seed']}, train fraction {sp['train_fraction']:g}")
        )
        click.echo(
            f"split:         trained on split {sp['split']!r} ({how}) of a manifest of "
            f"{sp['n_manifest_files']} files (hash {sp['manifest_hash']}); "
            f"{sp['n_train_files']} training files recorded by content hash"
        )
    if isinstance(out["selection"], dict):
        try:
            click.echo(format_selection(out["selection"]))
        except (KeyError, TypeError, ValueError):  # written by another version: show it raw
            click.echo(f"selection:     {out['selection']}")
    for y, r in sorted(out["training"].items()):
        if not isinstance(r, dict):
            continue
        k = f"K={str(r['n_components']):<3} " if "n_components" in r else ""
        click.echo(
            f"  {escape_name(y):<20} {k}{r.get('n_clips', '?'):>5} clips {r.get('n_frames', '?'):>8} frames  "
            f"{r.get('n_iter', '?'):>3} it  ll/frame {r.get('final_mean_loglik', float('nan')):.3f}"
        )
