"""``audiogmm plot``: the fitted mixture of one class along one feature dimension."""

from __future__ import annotations

import click
import numpy as np

from ..data.manifests import read_manifest
from ..exceptions import AudioGMMError
from ..io.atomic import atomic_write, check_writable
from .output import escape_name

_MAX_FILES = 200  # histogram frames: enough files for the shape, bounded time


@click.command("plot")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("data", type=click.Path(exists=True), required=False)
@click.option("--class", "label", help="Class to draw [default: the model's first].")
@click.option("--dim", type=click.IntRange(min=0),
              help="Feature dimension, 0-based [default: where the classes differ most].")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="PNG file to write.")  # fmt: skip
def command(model, data, label, dim, output):
    """Draw MODEL's mixture for one class: components dashed, mixture solid.

    With DATA (labelled files, as for `evaluate`), a histogram of the class's frames
    (at most 200 files) is drawn under the curves. For a --backend map model the UBM
    is drawn with the adapted class. Needs matplotlib.
    """
    from ..features import extract
    from ..pipeline import load_model
    from ..pipeline.report import figure_png, mixture_figure, separating_dimension

    check_writable(output)
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
