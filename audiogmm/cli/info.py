"""``audiogmm info``: what a model file holds."""

from __future__ import annotations

import os

import click

from ..features import FeatureConfig
from .options import echo_json, format_selection, json_option
from .output import dims_text, escape_name

_ADAPT = {"m": "means", "mw": "means and weights", "mwv": "means, weights and variances"}


def _load_any(model: str):
    """(bundle or None, classifier or None, DiagGMM or None, header) of a bundle, a bare
    classifier (e.g. of Kaldi features) or a single mixture; anything else raises the
    bundle loader's error."""
    from ..exceptions import ModelFileError
    from ..io import load
    from ..mixture import DiagGMM
    from ..pipeline import load_model

    try:
        bundle = load_model(model)
        return bundle, bundle.classifier, None, bundle.header
    except ModelFileError as first:
        try:
            obj = load(model)
        except ModelFileError:
            raise first from None
        if isinstance(obj, DiagGMM):
            return None, None, obj, obj.file_header_
        if "feature_config" in getattr(obj, "file_header_", {"feature_config": 0}):
            raise first from None  # a bundle that failed its checks, or Stats
        return None, obj, None, obj.file_header_


def _head(model: str, header: dict, as_json: bool) -> dict:
    """The fields every kind of file shows; printed first unless ``as_json``."""
    out = {"file": os.path.abspath(model), "format_version": header["format_version"],
           "audiogmm_version": header["audiogmm_version"]}  # fmt: skip
    if not as_json:
        click.echo(f"file:          {escape_name(out['file'])}")
        click.echo(f"format:        audiogmm v{out['format_version']} (written by "
                   f"{out['audiogmm_version']})")  # fmt: skip
    return out


def _describe_gmm(model: str, gmm, header: dict, as_json: bool) -> None:
    rep = gmm.fit_report_
    out = _head(model, header, as_json) | {
        "kind": "DiagGMM", "n_components": gmm.n_components, "n_dims": gmm.n_dims,
        "training": rep, "feature_config": header.get("feature_config"),
    }  # fmt: skip
    if as_json:
        return echo_json(out)
    cfg = header.get("feature_config")
    use = (f"a UBM (`audiogmm ubm`) for `train --backend map|gsv|ivector --ubm`, front end hash "
           f"{FeatureConfig.from_dict(cfg).content_hash()}" if cfg is not None
           else "no feature configuration (not a classifier for audio)")  # fmt: skip
    click.echo(f"mixture:       one DiagGMM, {gmm.n_components} diagonal components x {gmm.n_dims} "
               f"dims; {use}")  # fmt: skip
    if rep:
        click.echo(f"training:      {rep.get('n_frames', '?')} frames, {rep.get('n_iter', '?')} it "
                   f"({'converged' if rep.get('converged') else 'not converged'}), ll/frame "
                   f"{rep.get('final_mean_loglik', float('nan')):.3f}, "
                   f"{rep.get('n_reseeded', 0)} re-seeded")  # fmt: skip


@click.command("info")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@json_option
def command(model, as_json):
    """Describe a model file (a trained classifier, or a DiagGMM.save mixture).

    Labels, sizes, feature config, training summary with re-seed counts.
    """
    from ..models import BACKENDS
    from ..pipeline.classify import stored_split

    bundle, clf, gmm, header = _load_any(model)
    if gmm is not None:
        return _describe_gmm(model, gmm, header, as_json)
    split = None if bundle is None else stored_split(bundle, path=model)
    cfg = None if bundle is None else bundle.config
    fused = bundle is not None and bundle.fused
    out = _head(model, header, as_json) | {
        "labels": clf.labels_,
        # a GSV model has no class mixtures: its K is the UBM's
        "n_components": clf.n_components if fused or not hasattr(clf, "means_")
        else int(clf.means_.shape[1]),
        "n_dims": clf.n_dims,
        "kind": type(clf).__name__,
        "feature_config": None if cfg is None else cfg.to_dict(),
        "feature_config_hash": None if cfg is None else cfg.content_hash(),
        "feature_configs": [c.to_dict() for c in bundle.configs] if fused else None,
        "training": clf.fit_report_,
        # the digests are for evaluate's overlap check, not for reading
        "split": None if split is None else {k: v for k, v in split.items() if k != "train_files"}
        | {"n_train_files": len(split["train_files"])},  # fmt: skip
        "selection": header.get("selection"),
        "backend": next((k for k, c in BACKENDS.items() if type(clf) is c), "fused"),
    }
    ubm = {"ubm_components": getattr(getattr(clf, "ubm_", None), "n_components", None)}
    if out["backend"] == "map":
        out["map"] = ubm | {"relevance": clf.relevance, "adapt": clf.adapt,
                            "threshold": clf.threshold_, "reject_far": clf.reject_far,
                            "top_c": clf.top_c}  # fmt: skip
    elif out["backend"] == "gsv":
        out["gsv"] = ubm | {"relevance": clf.relevance, "C": clf.C, "calibration": clf.calibration_}
    elif out["backend"] == "ivector":
        out["ivector"] = ubm | {"rank": int(clf.T_.shape[1]), "n_iter": clf.n_iter,
                                "lda_dims": int(clf.projection_.shape[1]),
                                "calibration": clf.calibration_}  # fmt: skip
    if as_json:
        return echo_json(out)
    click.echo(f"classes:       {len(clf.labels_)}: {', '.join(map(escape_name, clf.labels_))}")
    b = out.get(out["backend"], {})
    ubm = (f"a UBM of {b.get('ubm_components')} diagonal components x {dims_text(out['n_dims'])} "
           "dims")  # fmt: skip
    cal = "calibrated to LLRs" if b.get("calibration") else "not calibrated"
    if out["backend"] == "map":
        thr = ("none (predict --reject needs a number)" if b["threshold"] is None
               else f"{b['threshold']:.4f} per-frame LLR (--reject auto, " + (
                   "Bayes threshold of the calibrated LLR" if b["reject_far"] is None
                   else f"target false accept {b['reject_far']:g}") + ")")  # fmt: skip
        click.echo(f"backend:       map (GMM-UBM): {ubm}, classes MAP-adapted "
                   f"({_ADAPT[b['adapt']]}, relevance {b['relevance']:g})")  # fmt: skip
        click.echo(f"threshold:     {thr}")
    elif out["backend"] == "gsv":
        click.echo(f"backend:       gsv: supervectors of {ubm} (relevance {b['relevance']:g}), "
                   f"logistic regression (C {b['C']:g}), scores {cal}")  # fmt: skip
    elif out["backend"] == "ivector":
        click.echo(f"backend:       ivector: i-vectors of rank {b['rank']} ({b['n_iter']} EM "
                   f"iterations) of {ubm}, LDA to {b['lda_dims']} dims + WCCN, cosine scores {cal}")  # fmt: skip
    else:
        click.echo(f"mixtures:      {out['n_components']} diagonal components x "
                   f"{dims_text(out['n_dims'])} dims" + (f" (late fusion of {len(bundle.configs)} "
                                                        "front ends)" if fused else ""))  # fmt: skip
    if cfg is None:
        click.echo("features:      none stored (a bare classifier file, e.g. of Kaldi features)")
    for c in bundle.configs if bundle is not None else []:
        more = "" if c.engine == "numpy" else f", engine {c.engine}"
        more += f", extras {', '.join(n for n, _ in c.extras)}" if c.extras else ""
        click.echo(
            f"features:      {c.sample_rate} Hz, {c.win_ms:g}/{c.hop_ms:g} ms, "
            f"{c.n_mels} mels, {c.n_mfcc} MFCC, deltas {c.delta_order}, "
            f"VAD {'on' if c.vad else 'off'}, CMVN {c.cmvn}{more} (hash {c.content_hash()})"
        )
    sp = out["split"]
    if sp is None:
        click.echo("split:         not recorded (evaluate cannot check for training files)")
    else:
        how = ("the manifest's split column" if sp["from_column"]
               else f"seed {sp['seed']}, train fraction {sp['train_fraction']:g}")  # fmt: skip
        click.echo(f"split:         trained on split {sp['split']!r} ({how}) of a manifest of "
                   f"{sp['n_manifest_files']} files (hash {sp['manifest_hash']}); "
                   f"{sp['n_train_files']} training files recorded by content hash")  # fmt: skip
    if isinstance(out["selection"], dict):
        try:
            click.echo(format_selection(out["selection"]))
        except (KeyError, TypeError, ValueError):  # written by another version: show it raw
            click.echo(f"selection:     {out['selection']}")
    for y, r in sorted(out["training"].items()):
        if not isinstance(r, dict):
            continue
        k = f"K={str(r['n_components']):<3} " if "n_components" in r else ""
        # gsv and ivector classes have no mixture of their own: no likelihood, no re-seeds
        ll = ("" if "final_mean_loglik" not in r else f"  ll/frame {r['final_mean_loglik']:.3f}"
              f"  {r.get('n_reseeded', '?')} re-seeded")  # fmt: skip
        click.echo(
            f"  {escape_name(y):<20} {k}{r.get('n_clips', '?'):>5} clips {r.get('n_frames', '?'):>8} frames  "
            f"{r.get('n_iter', '?'):>3} it{ll}"
        )
