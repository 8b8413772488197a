"""What ``--preset auto`` may try, and what admits each: the candidate front ends, the
backends and their front ends, the files' band that gates them (:func:`within_bandwidth`,
:func:`auto_backends`), why a backend is left out (:data:`NOT_TRIED`) and the margin by which
each must beat the ml choice (:data:`BACKEND_SE`). :mod:`.steps` applies them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence

from ..data import Record
from ..features import PRESETS, FeatureConfig
from ..models import BACKENDS

__all__ = ["BACKEND_FRONT_ENDS", "BACKEND_SE", "CMN", "FRONT_ENDS", "NOT_TRIED", "auto_backends",
           "within_bandwidth"]  # fmt: skip

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

#: Why ``backends="auto"`` leaves a backend out (:func:`auto_backends`); ``--backends LIST``
#: tries any.
NOT_TRIED: Mapping[str, str] = {
    "gsv": "on files sampled above 16 kHz --preset auto extracts the full-band sound front end, "
           "and gsv's speaker front end as a third took auto's training to 4.06x a plain "
           "train on the dev sounds (budget 4x), where gsv was chosen on none of 6 full-band "
           "dev splits; with a fixed front end it was chosen on none of the 5 dev sets",
    "map": "gsv is tried in its place on files sampled at 16 kHz or below: on the 9 dev "
           "speaker splits map was chosen on none, with gsv or without it, and gsv on all 9 "
           "(+2.2, +4.5 and +2.1 points over auto with map on the three sets)",
    "ivector": "with it in the CV, auto cost 5.4x a plain train on the dev sounds, past the "
               "4x budget, and it was chosen on neither the dev sounds nor the hard speakers",
}


def auto_backends(speech_band: bool) -> tuple[tuple[str, ...], dict[str, str]]:
    """The backends ``backends="auto"`` tries beside ml, and those it leaves out with why
    (:data:`NOT_TRIED`). ``speech_band``: ``--preset auto`` on files sampled at 16 kHz or
    below, where the full-band ``sound`` front end is skipped (:func:`within_bandwidth`) and
    gsv's ``speaker`` front end takes its place in the budget: gsv; otherwise map."""
    tried = ("gsv",) if speech_band else ("map",)
    return tried, {b: why for b, why in NOT_TRIED.items() if b not in tried and b in BACKENDS}


#: Standard errors by which each backend must beat the ml choice in CV. map: two, as a CV
#: model sees fewer clips, where MAP gains most (on the hard dev speakers MAP was 1.9 SE above
#: ML in CV and 9 clips of 362 below it on the test side); ivector: as map, untested. gsv (UBM
#: 64, the speaker front end): one, the rule for K and fusions: on the 9 dev speaker splits its
#: CV lead over the ml choice was 9-34 clips and its test lead -1 to +18; at two it was chosen
#: on 6 of them, at one on all 9 (README "Presets and tuning", session 17).
BACKEND_SE: Mapping[str, float] = {"map": 2.0, "gsv": 1.0, "ivector": 2.0}


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
