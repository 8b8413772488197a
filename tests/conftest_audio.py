"""Test helpers for the audio front end (a plain module, imported by the test files).

* :func:`speech_like` synthesises a voiced, syllabic signal with pauses.
* :func:`make_bad_file_suite` writes the bad-file suite of the front-end issue
  into a folder and says, for each file, whether it must work or which error
  (and message fragment) it must raise.
* :func:`real_clips` lists the FLAC files under ``data_samples/`` when present.
* :func:`record_extractions` records the front ends every ``extract_many_configs`` call a
  module makes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
DATA_SAMPLES = ROOT / "data_samples"


def speech_like(
    sr: int = 16000, seconds: float = 2.0, seed: int = 0, *, pause: bool = True
) -> np.ndarray:
    """A speech-like float32 signal: harmonic source with a moving f0, 4 Hz syllables, pauses."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    f0 = 120.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6.28))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = np.zeros(n)
    for h in range(1, 30):
        if h * 200.0 > sr / 2:
            break
        formant = np.exp(-(((h * 140.0) - 700.0) ** 2) / 2e5) + 0.5 * np.exp(
            -(((h * 140.0) - 1800.0) ** 2) / 4e5
        )
        y += (0.3 / h + formant) * np.sin(h * phase)
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6.28)), 0, None) ** 2
    y = y * envelope
    if pause:
        y[int(0.45 * n) : int(0.6 * n)] = 0.0
    y += 1e-3 * rng.standard_normal(n)
    y = 0.5 * y / np.abs(y).max()
    return y.astype(np.float32)


@dataclass(frozen=True)
class BadCase:
    """One file of the suite: ``error`` is None when extraction must work."""

    path: str
    error: Optional[type]
    match: Optional[str]


def make_bad_file_suite(folder: Path) -> dict[str, BadCase]:
    """Write the bad-file suite into *folder* and return name → expectation for ``extract``."""
    from audiogmm.exceptions import AudioError, FeatureError

    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, BadCase] = {}

    def add(name: str, error: Optional[type], match: Optional[str]) -> str:
        p = str(folder / name)
        cases[name] = BadCase(p, error, match)
        return p

    good = speech_like(16000, 1.0, seed=1)
    sf.write(add("good.wav", None, None), good, 16000)
    sf.write(add("good.flac", None, None), good, 16000)
    sf.write(add("good.ogg", None, None), good, 16000, format="OGG", subtype="VORBIS")
    open(add("empty.wav", AudioError, "empty file"), "wb").close()
    sf.write(add("zero_samples.wav", AudioError, "zero samples"), np.zeros(0, np.float32), 16000)
    good_bytes = Path(cases["good.wav"].path).read_bytes()
    Path(add("truncated_header.wav", AudioError, "unreadable or corrupt")).write_bytes(
        good_bytes[:30]
    )
    Path(add("random_bytes.wav", AudioError, "unreadable or corrupt")).write_bytes(
        np.random.default_rng(7).bytes(4096)
    )
    Path(add("text_file.wav", AudioError, "unreadable or corrupt")).write_text(
        "this is not audio\n" * 20, encoding="utf-8"
    )
    sf.write(add("silence.wav", FeatureError, "silent: no frame above"), np.zeros(16000), 16000)
    sf.write(add("ten_samples.wav", AudioError, "too short"), good[:10], 16000)
    nan = good.copy()
    nan[100:110] = np.nan
    sf.write(add("nan_samples.wav", AudioError, "non-finite"), nan, 16000, subtype="FLOAT")
    st = np.stack([speech_like(96000, 1.0, seed=2), speech_like(96000, 1.0, seed=3)], axis=1)
    sf.write(add("stereo_24bit_96k.wav", None, None), st, 96000, subtype="PCM_24")
    sf.write(
        add("mono_8bit_8k.wav", None, None), speech_like(8000, 1.0, seed=4), 8000, subtype="PCM_U8"
    )
    sf.write(add("Ünïcødé name with spaces é.wav", None, None), good, 16000)
    add("missing.wav", AudioError, "not found")
    return cases


def real_clips(limit: Optional[int] = None) -> list[str]:
    """FLAC files under data_samples/ (sorted), or [] when the folder is not there."""
    if not DATA_SAMPLES.is_dir():
        return []
    out = []
    for group in ("speakers", "sounds"):
        base = DATA_SAMPLES / group
        if base.is_dir():
            for dirpath, _, files in sorted(os.walk(base)):
                out.extend(os.path.join(dirpath, f) for f in sorted(files) if f.endswith(".flac"))
    return out[:limit] if limit else out


def record_extractions(monkeypatch, module) -> list:
    """Wrap ``module.extract_many_configs`` to record the front ends each call extracts (its
    configs' extraction roots: the others are derived from their frames); returns the list.

    The calls still extract (the real function runs); the list grows as they are made.
    """
    from audiogmm.features.extraction import extraction_roots

    calls = []
    real = module.extract_many_configs

    def recording(items, configs, **kw):
        configs = list(configs)
        calls.extend(configs[i] for i in dict.fromkeys(extraction_roots(configs)))
        return real(items, configs, **kw)

    monkeypatch.setattr(module, "extract_many_configs", recording)
    return calls
