#!/usr/bin/env python
"""Closed-set speaker identification with one GMM per speaker (Reynolds 1995 style).

Stages (resume with --stage N, stop after --stop-stage N); all output goes to --exp:
  0 prepare   read DATA, make a stratified train/test split -> records.csv
  1 extract   features for every file, cached -> features/, skipped.csv
  2 train     one diagonal GMM per class -> model.npz
  3 evaluate  classify the test files by max total log-likelihood -> results.json
  4 report    metrics.json, confusion.txt, confusion.png -> report/

Run:  python recipes/speaker_id.py                 (bundled data_samples/speakers)
      python recipes/speaker_id.py --data DIR_OR_CSV_OR_KALDI_DIR --components 64
"""

from __future__ import annotations

import os

from audiogmm.cli import run_recipe
from audiogmm.experiment import recipe_command

HERE = os.path.dirname(os.path.abspath(__file__))

# -- Begin configuration section ------------------------------------------------------------
DATA = os.path.join(HERE, "..", "data_samples", "speakers")  # folder / CSV / Kaldi dir
PRESET = "speech"  # 16 kHz, 25/10 ms, 20 MFCC + D + DD, energy VAD, utterance CMVN
COMPONENTS = 16  # per class
TRAIN_FRACTION = 0.7  # per class, stratified, deterministic for a given SEED
SEED = 0
# -- End configuration section --------------------------------------------------------------

main = recipe_command(
    data=DATA, exp="exp/speaker_id", preset=PRESET, components=COMPONENTS,
    train_fraction=TRAIN_FRACTION, seed=SEED,
)  # fmt: skip

# Expected on the bundled data_samples/speakers (9 speakers, 36 test clips), K=16:
#   ACCURACY 100.00%   (about 5-10 s on 2 cores, most of it feature extraction)

if __name__ == "__main__":
    run_recipe(main)
