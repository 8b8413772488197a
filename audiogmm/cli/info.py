"""The model commands: ``info`` (what a model file holds) and ``plot`` (the fitted mixture
of one class along one feature dimension)."""

from __future__ import annotations

import os

import click
import numpy as np

from ..data.manifests import read_manifest
from ..exceptions import AudioGMMError, ModelFileError
from ..features import FeatureConfig
from ..io.atomic import atomic_write
from ..mixture import DiagGMM
from ..models import BACKENDS
from . import options
from .output import dims_text, echo_json, escape_name, format_selection

_MAX_FILES = 200  # plot's histogram frames: enough files for the shape, bounded time

_ADAPT = {"m": "means", "mw": "means and weights", "mwv": "means, weights and variances"}
#: Per backend: its settings (``--json``) read from the classifier, and their line of text.
_BACKENDS = {
    "map": (lambda c: {"relevance": c.relevance, "adapt": c.adapt, "threshold": c.threshold_,
                       "reject_far": c.reject_far, "top_c": c.top_c},
            "map (GMM-UBM): {ubm}, classes MAP-adapted ({adapted}, relevance {relevance:g})"),
    "gsv": (lambda c: {"relevance": c.relevance, "C": c.C, "calibration": c.calibration_},
            "gsv: supervectors of {ubm} (relevance {relevance:g}), logistic regression (C {C:g}), "
            "scores {cal}"),
    "ivector": (lambda c: {"rank": int(c.T_.shape[1]), "n_iter": c.n_iter,
                           "lda_dims": int(c.projection_.shape[1]), "calibration": c.calibration_},
                "ivector: i-vectors of rank {rank} ({n_iter} EM iterations) of {ubm}, LDA to "
                "{lda_dims} dims + WCCN, cosine scores {cal}")}  # fmt: skip


def _load_any(model: str):
    """(bundle, classifier, DiagGMM, header), None where absent, of a bundle, a bare classifier
    (e.g. of Kaldi features) or a single mixture; else the bundle loader's error."""
    from ..io import load
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


def _show(field: str, text: str) -> None:
    click.echo(f"{field + ':':<15}{text}")


def _summary(model: str, bundle, clf, gmm, header: dict) -> dict:
    """What ``info --json`` prints."""
    from ..pipeline.classify import stored_split

    out = {"file": os.path.abspath(model), "format_version": header["format_version"],
           "audiogmm_version": header["audiogmm_version"]}  # fmt: skip
    if gmm is not None:
        return out | {"kind": "DiagGMM", "n_components": gmm.n_components, "n_dims": gmm.n_dims,
                      "feature_config": header.get("feature_config"),
                      "training": gmm.fit_report_}  # fmt: skip
    split = None if bundle is None else stored_split(bundle, path=model)
    cfg, fused = bundle and bundle.config, bundle is not None and bundle.fused
    out |= {
        "labels": clf.labels_, "n_dims": clf.n_dims, "kind": type(clf).__name__,
        # a GSV model has no class mixtures: its K is the UBM's
        "n_components": clf.n_components if fused or not hasattr(clf, "means_")
        else int(clf.means_.shape[1]),
        "feature_config": cfg and cfg.to_dict(), "feature_config_hash": cfg and cfg.content_hash(),
        "feature_configs": [c.to_dict() for c in bundle.configs] if fused else None,
        "training": clf.fit_report_, "selection": header.get("selection"),
        # the digests are for evaluate's overlap check, not for reading
        "split": split and {k: v for k, v in split.items() if k != "train_files"}
        | {"n_train_files": len(split["train_files"])},
        "backend": next((k for k, c in BACKENDS.items() if type(clf) is c), "fused")}  # fmt: skip
    if out["backend"] in _BACKENDS:
        ubm = getattr(getattr(clf, "ubm_", None), "n_components", None)
        out[out["backend"]] = {"ubm_components": ubm, **_BACKENDS[out["backend"]][0](clf)}
    return out


@click.command("info")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@options.json_option
def info(model, as_json):
    """Describe a model file (a trained classifier, or a DiagGMM.save mixture).

    Labels, sizes, feature config, training summary with re-seed counts.
    """
    bundle, clf, gmm, header = _load_any(model)
    out = _summary(model, bundle, clf, gmm, header)
    if as_json:
        return echo_json(out)
    _show("file", escape_name(out["file"]))
    _show("format", f"audiogmm v{out['format_version']} (written by {out['audiogmm_version']})")
    if gmm is not None:
        cfg, rep = out["feature_config"], out["training"]
        use = (f"a UBM (`audiogmm ubm`) for `train --backend map|gsv|ivector --ubm`, front end "
               f"hash {FeatureConfig.from_dict(cfg).content_hash()}" if cfg is not None
               else "no feature configuration (not a classifier for audio)")  # fmt: skip
        _show("mixture", f"one DiagGMM, {gmm.n_components} diagonal components x {gmm.n_dims} "
              f"dims; {use}")  # fmt: skip
        if rep:
            _show("training", f"{rep.get('n_frames', '?')} frames, {rep.get('n_iter', '?')} it "
                  f"({'converged' if rep.get('converged') else 'not converged'}), ll/frame "
                  f"{rep.get('final_mean_loglik', float('nan')):.3f}, "
                  f"{rep.get('n_reseeded', 0)} re-seeded")  # fmt: skip
        return
    _show("classes", f"{len(clf.labels_)}: {', '.join(map(escape_name, clf.labels_))}")
    dims, b = dims_text(out["n_dims"]), out.get(out["backend"], {})
    if b:
        _show("backend", _BACKENDS[out["backend"]][1].format(
            **b, ubm=f"a UBM of {b['ubm_components']} diagonal components x {dims} dims",
            cal="calibrated to LLRs" if b.get("calibration") else "not calibrated",
            adapted=_ADAPT.get(b.get("adapt"))))  # fmt: skip
    else:
        _show("mixtures", f"{out['n_components']} diagonal components x {dims} dims"
              + (f" (late fusion of {len(bundle.configs)} front ends)" if bundle and bundle.fused
                 else ""))  # fmt: skip
    if out["backend"] == "map":
        _show("threshold", "none (predict --reject needs a number)" if b["threshold"] is None
              else f"{b['threshold']:.4f} per-frame LLR (--reject auto, " + (
                  "Bayes threshold of the calibrated LLR" if b["reject_far"] is None
                  else f"target false accept {b['reject_far']:g}") + ")")  # fmt: skip
    if bundle is None:
        _show("features", "none stored (a bare classifier file, e.g. of Kaldi features)")
    for c in bundle.configs if bundle is not None else []:
        more = "" if c.engine == "numpy" else f", engine {c.engine}"
        more += f", extras {', '.join(n for n, _ in c.extras)}" if c.extras else ""
        _show("features", f"{c.sample_rate} Hz, {c.win_ms:g}/{c.hop_ms:g} ms, {c.n_mels} mels, "
              f"{c.n_mfcc} MFCC, deltas {c.delta_order}, VAD {'on' if c.vad else 'off'}, CMVN "
              f"{c.cmvn}{more} (hash {c.content_hash()})")  # fmt: skip
    sp = out["split"]
    if sp is None:
        _show("split", "not recorded (evaluate cannot check for training files)")
    else:
        how = ("the manifest's split column" if sp["from_column"]
               else f"seed {sp['seed']}, train fraction {sp['train_fraction']:g}")  # fmt: skip
        _show("split", f"trained on split {sp['split']!r} ({how}) of a manifest of "
              f"{sp['n_manifest_files']} files (hash {sp['manifest_hash']}); "
              f"{sp['n_train_files']} training files recorded by content hash")  # fmt: skip
    if isinstance(out["selection"], dict):
        try:
            click.echo(format_selection(out["selection"]))
        except (KeyError, TypeError, ValueError):  # written by another version: show it raw
            _show("selection", str(out["selection"]))
    for y, r in sorted(out["training"].items()):
        if not isinstance(r, dict):
            continue
        k = f"K={str(r['n_components']):<3} " if "n_components" in r else ""
        # gsv and ivector classes have no mixture of their own: no likelihood, no re-seeds
        ll = ("" if "final_mean_loglik" not in r else f"  ll/frame {r['final_mean_loglik']:.3f}"
              f"  {r.get('n_reseeded', '?')} re-seeded")  # fmt: skip
        click.echo(f"  {escape_name(y):<20} {k}{r.get('n_clips', '?'):>5} clips "
                   f"{r.get('n_frames', '?'):>8} frames  {r.get('n_iter', '?'):>3} it{ll}")


@click.command("plot")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("data", type=click.Path(exists=True), required=False)
@click.option("--class", "label", help="Class to draw [default: the model's first].")
@click.option("--dim", type=click.IntRange(min=0),
              help="Feature dimension, 0-based [default: where the classes differ most].")
@click.option("-o", "--output", type=options.OutputPath(dir_okay=False), required=True,
              help="PNG file to write.")
def plot(model, data, label, dim, output):
    """Draw MODEL's mixture for one class: components dashed, mixture solid.

    With DATA (labelled files, as for `evaluate`), a histogram of the class's frames
    (at most 200 files) is drawn under the curves. For a --backend map model the UBM
    is drawn with the adapted class. Needs matplotlib.
    """
    from ..features import extract
    from ..pipeline import load_model
    from ..pipeline.plot import figure_png, mixture_figure, separating_dimension

    bundle = load_model(model)
    label = str(bundle.classifier.labels_[0]) if label is None else label
    frames = None
    if data:
        feats = []
        for p in [r.path for r in read_manifest(data) if r.label == label][:_MAX_FILES]:
            try:
                feats.append(extract(p, config=bundle.configs[0]))
            except AudioGMMError as e:  # a bad file costs the histogram one file, not the plot
                click.echo(escape_name(f"skipped: {e}"), err=True)
        if not feats:
            raise click.ClickException(escape_name(f"no usable file of class {label!r} in {data}"))
        frames = np.concatenate(feats)
    d = separating_dimension(bundle) if dim is None else dim
    png = figure_png(mixture_figure(bundle, label, d, frames))
    atomic_write(output, lambda f: f.write(png))
    name, unit = bundle.configs[0].dimension_names()[d]
    click.echo(escape_name(f"wrote {output}: class {label!r}, dimension {d} ({name}, {unit})"))
