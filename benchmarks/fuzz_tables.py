"""Fuzz the table readers for longer than CI does, and count the outcomes.

Runs the fuzzer of ``tests/test_fuzz_tables.py`` (manifest CSVs, trials CSVs, Kaldi
``wav.scp``/``segments``/``utt2spk``, ``feats.scp`` and ``feats.ark``, each mutated by
hostile cells, inserted or flipped bytes, deletions, repeated lines, truncations and
re-encodings) with ``--examples N`` examples, without stopping at the first failure, and
prints how many ended in

* ``ok``: rows that satisfy the reader's contract;
* ``refused``: one ``DatasetError`` naming the data file or folder;
* ``BAD:<what>``: anything else.

Only ``ok`` and ``refused`` are acceptable; the exit status is 1 when any ``BAD``
outcome occurred. The first few BAD cases of each kind are printed.

Run::

    python benchmarks/fuzz_tables.py --examples 5000
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks._common import fuzz, print_bad  # noqa: E402
from tests import test_fuzz_tables as F  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=1000)
    p.add_argument("--show", type=int, default=3, help="BAD cases printed per outcome")
    args = p.parse_args()
    seen, bad, dt = fuzz(F.table_cases(), F.run_table_case, args.examples, args.show)
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for (kind, _), outcome in seen:
        counts[kind][outcome] += 1
    print(f"== tables: {len(seen)} examples in {dt:.1f} s")
    print(f"  {'table':<10} {'examples':>8} {'refused':>8} {'ok':>8} {'other':>6}")
    for kind in F.KINDS:
        c = counts[kind]
        n, other = sum(c.values()), sum(k for o, k in c.items() if o.startswith("BAD"))
        print(f"  {kind:<10} {n:>8} {c['refused']:>8} {c['ok']:>8} {other:>6}")
    return print_bad(bad)


if __name__ == "__main__":
    sys.exit(main())
