"""Datasets: manifests (folder, CSV, Kaldi dir), splits, and the cached parallel extraction.

Modules in data-flow order: ``manifests`` (and the text readers), ``splits``, ``cache``,
``shards``, ``kaldi``. Names are imported on first use; ``__all__`` is what the README
documents, the others serve the pipeline and the CLI (their home is their module)."""

from .. import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["ExtractionResult", "RunOptions", "extract_many", "extract_many_configs"],
                    ".cache"),
    **dict.fromkeys(["Record", "content_hash", "expand_paths", "read_csv_rows", "read_manifest"],
                    ".manifests"),  # fmt: skip
    **dict.fromkeys(["TRAIN_FRACTION", "select", "split_records", "split_spec",
                     "stored_training_paths", "training_overlap"], ".splits"),  # fmt: skip
}
__all__ = ["Record", "RunOptions", "extract_many", "read_csv_rows", "read_manifest", "select",
           "split_records"]  # fmt: skip
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
