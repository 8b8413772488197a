"""What ``--preset auto`` may try, and what admits each: the candidate front ends, the
backends and their front ends, the files' band that gates them (:func:`within_bandwidth`,
:func:`auto_backends`), why a backend is left out (:data:`NOT_TRIED`) and the margin by which
each must beat the default (:data:`BACKEND_SE`). :mod:`.steps` applies them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence

from ..data import Record
from ..features import PRESETS, FeatureConfig
from ..models import BACKENDS, DEFAULT_BACKEND

__all__ = ["BACKEND_FRONT_ENDS", "BACKEND_SE", "CMN", "FRONT_ENDS", "NOT_TRIED", "auto_backends",
           "backend_label", "within_bandwidth"]  # fmt: skip

logger = logging.getLogger(__name__)

#: Front ends that ``--preset auto`` cross-validates, simplest and cheapest first: the
#: default ``general`` and the full-band ``sound`` (44.1 kHz, only for files with content
#: above 8 kHz). The other presets never beat ``general`` by one SE in CV on the dev corpus
#: (README "Presets and tuning").
FRONT_ENDS: Mapping[str, FeatureConfig] = {"general": PRESETS["general"], "sound": PRESETS["sound"]}
#: Added to the candidates as ``<widest>-cmn``: the widest front end with per-clip cepstral
#: mean normalisation (same extraction); weaker alone, a gain as a late-fusion partner.
CMN = {"cmvn": "utterance", "cmvn_norm_vars": False}
#: The front end a backend is cross-validated (and trained) on under ``--preset auto``, when
#: not the default: supervectors are a speaker model, and the ``speaker`` front end is theirs
#: (``tune`` on the dev speakers, 8 kHz and hard speakers, seed 0, per-fold UBM of 64: 473,
#: 467 and 319 clips right against 468, 448 and 311 on ``general``; README "Presets and tuning").
BACKEND_FRONT_ENDS: Mapping[str, str] = {"gsv": "speaker"}

#: Why ``backends="auto"`` leaves a backend (or a backend on its own front end) out
#: (:func:`auto_backends`); ``--backends LIST`` tries any.
NOT_TRIED: Mapping[str, str] = {
    "gsv (speaker)": "on files sampled above 16 kHz --preset auto extracts the full-band sound "
                     "front end, and gsv's speaker front end as a third took auto's training "
                     "to 4.06x a plain train on the dev sounds (budget 4x), where it was chosen "
                     "on none of 6 full-band dev splits",
    "map": "in auto's CV on the 6 full-band dev splits map (UBM 64) was below gsv on the same "
           "front end and UBM on every one, by 6-17 clips, and on the 9 dev speaker splits it "
           "was chosen on none",
    "ivector": "with it in the CV, auto cost 5.4x a plain train on the dev sounds, past the "
               "4x budget, and it was chosen on neither the dev sounds nor the hard speakers",
}


def auto_backends(speech_band: bool, searching: bool = True) -> tuple[tuple[tuple[str, str],
                                                                            ...], dict[str, str]]:
    """What ``backends="auto"`` tries beside the ml choice, as ``(backend, front end)`` pairs
    (``""``: the default front end), and what it leaves out with why (:data:`NOT_TRIED`):
    gsv on the default front end, the default (:data:`~audiogmm.models.DEFAULT_BACKEND`),
    always; with ``--preset auto`` (``searching``) on files sampled at 16 kHz or below
    (``speech_band``: the full-band ``sound`` front end was skipped, :func:`within_bandwidth`),
    gsv on its own front end (:data:`BACKEND_FRONT_ENDS`) too."""
    tried = [(DEFAULT_BACKEND, "")]
    if searching and speech_band:
        tried += [(b, f) for b, f in BACKEND_FRONT_ENDS.items() if b in BACKENDS]
    # a fixed front end (not searching): no backend's own front end is left out
    own = [] if searching else list(BACKEND_FRONT_ENDS.items())
    names = {backend_label(b, f) for b, f in [*tried, *own]}
    return tuple(tried), {b: why for b, why in NOT_TRIED.items()
                          if b not in names and b.split()[0] in BACKENDS}  # fmt: skip


def backend_label(backend: str, front_end: str) -> str:
    """A backend's name in the tune table: ``gsv``, or ``gsv (speaker)`` on its own front end."""
    return f"{backend} ({front_end})" if front_end else backend


#: Standard errors by which each backend must beat the default in CV (with ml as the default:
#: the ml choice). ml (its choice of front ends, K and fusion) against the gsv default: two,
#: as CV favours it: a fold's regression learns from two thirds of each class's clips. On the
#: 6 full-band dev splits (the sets where auto chose ml) the ml choice led gsv in auto's CV
#: by 6 clips on average (from 9 behind to 20 ahead) and trailed it on the test sides by 3.5
#: (from 16 behind to 5 ahead; session 19).
#: map: two, as a CV model sees fewer clips, where MAP gains most (on the hard dev speakers
#: MAP was 1.9 SE above ML in CV and 9 clips of 362 below it on the test side); ivector: as
#: map, untested. gsv on its own front end: one, the rule for K and fusions: on the 9 dev
#: speaker splits its CV lead over the ml choice was 9-34 clips and its test lead -1 to +18
#: (README "Presets and tuning", session 17).
BACKEND_SE: Mapping[str, float] = {"ml": 2.0, "map": 2.0, "gsv": 1.0, "ivector": 2.0}


def within_bandwidth(cands: Mapping[str, FeatureConfig], records: Sequence[Record]) -> dict:
    """The candidates (name -> config) minus those that would only analyse upsampled audio:
    above every file's native rate, after one that covers it (``sound`` on 16 kHz speech)."""
    from .. import audio
    native = 0
    for r in records:
        with contextlib.suppress(Exception):  # the extraction names the file and the reason
            native = max(native, audio.info(r.path).sample_rate)
    out: dict[str, FeatureConfig] = {}
    for name, cfg in cands.items():
        if native and any(native <= c.sample_rate < cfg.sample_rate for c in out.values()):
            logger.info("front end %s skipped: %d Hz analysis, but no training file is sampled "
                        "above %d Hz", name, cfg.sample_rate, native)  # fmt: skip
        else:
            out[name] = cfg
    return out
