"""Datasets: manifests (folder, CSV, Kaldi dir), splits, and the cached parallel extraction.

Modules in data-flow order: ``tables`` (the text readers), ``manifests``, ``splits``,
``cache``, ``shards``, ``kaldi``. Names are
imported on first use.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["ExtractionResult", "RunOptions", "Skipped", "extract_many"], ".cache"),
    **dict.fromkeys(["ShardStore", "ShardWriter", "is_store", "open_store", "write_store"], ".shards"),
    **dict.fromkeys(
        [
            "Record",
            "audio_files_under",
            "content_hash",
            "expand_paths",
            "read_csv",
            "read_folder",
            "read_kaldi_dir",
            "read_manifest",
            "write_csv",
        ],
        ".manifests",
    ),
    "read_csv_rows": ".tables",
    **dict.fromkeys(
        [
            "TRAIN_FRACTION",
            "file_identity",
            "labels",
            "select",
            "split_records",
            "split_spec",
            "stored_training_paths",
            "training_overlap",
            "validate_split_block",
        ],
        ".splits",
    ),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
