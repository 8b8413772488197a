"""Fuzz the audio loader for longer than CI does, and count the outcomes.

Runs the audio fuzzer of ``tests/test_audio_hostile.py`` (small real-signal WAVs and
FLACs with mutated RIFF/WAVE or FLAC STREAMINFO header fields, flipped bytes,
truncations; ``audiogmm.audio.load`` at 16 kHz or the native rate) with ``--examples N`` examples, without stopping at the
first failure, and prints how many ended in

* ``ok``: a finite 1-D float32 waveform;
* ``AudioError``: refused, with the file named;
* ``BAD:<what>``: anything else (raw exception, NaN samples, unnamed file, ...).

Only ``ok`` and ``AudioError`` are acceptable; the exit status is 1 when any ``BAD``
outcome occurred. The first few BAD cases of each kind are printed. The outcome of
each WAV header field is also tallied (``--by-field``).

Run::

    python benchmarks/fuzz_audio.py --examples 3000
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks._common import fuzz, print_bad  # noqa: E402
from tests import test_audio_hostile as F  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=1000)
    p.add_argument("--show", type=int, default=3, help="BAD cases printed per outcome")
    p.add_argument("--by-field", action="store_true", help="tally outcomes per mutated header field")
    args = p.parse_args()
    seen, bad, dt = fuzz(F.audio_cases(), F.run_audio_case, args.examples, args.show)
    counts = collections.Counter(outcome for _, outcome in seen)
    by_field: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for case, outcome in seen:
        for name, _ in case[1]:
            by_field[name][outcome] += 1
    total = len(seen)
    print(f"== audio: {total} examples in {dt:.1f} s")
    for outcome, k in counts.most_common():
        print(f"  {outcome:<45} {k:>7}  {100 * k / max(total, 1):5.1f}%")
    if args.by_field:
        for name, c in sorted(by_field.items()):
            print(f"  field {name:<12} " + ", ".join(f"{o}: {k}" for o, k in c.most_common()))
    return print_bad(bad)


if __name__ == "__main__":
    sys.exit(main())
