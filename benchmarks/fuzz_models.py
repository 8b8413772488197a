"""Fuzz the model loader for longer than CI does, and count the outcomes.

Runs the fuzzers of ``tests/test_fuzz_loader.py`` (same strategies, same mutated real model
files, same outcome classification) with ``--examples N`` examples each, without
stopping at the first failure, and prints per fuzzer how many examples ended in

* ``ok``: loaded, and the model is valid (finite, consistent, scores, ``info`` works);
* ``ModelFileError``: refused, with the file named;
* ``BAD:<what>``: anything else (a raw exception, an invalid model that loaded, ...).

Only ``ok`` and ``ModelFileError`` are acceptable; the exit status is 1 when any
``BAD`` outcome occurred. The first few BAD cases of each kind are printed.

Run::

    python benchmarks/fuzz_models.py --examples 2000            # all fuzzers
    python benchmarks/fuzz_models.py --examples 500 --fuzzer header
    python benchmarks/fuzz_models.py --examples 2000 --kind UBMClassifier   # one file kind

The fuzzers ``index`` and ``index-bytes`` mutate a shard store's ``index.json``; the others
mutate model files of every kind (classifier, UBM/MAP, fused, DiagGMM, EM checkpoint).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from tests import test_fuzz_loader as F  # noqa: E402


def run(fuzzer: str, n: int, show: int) -> tuple[collections.Counter, dict[str, list]]:
    counts: collections.Counter = collections.Counter()
    bad: dict[str, list] = collections.defaultdict(list)
    strategy = F.MODEL_FUZZERS[fuzzer][0]

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy())
    def one(case):
        outcome, detail = F.run_model_case(fuzzer, case)
        counts[outcome] += 1
        if outcome.startswith("BAD") and len(bad[outcome]) < show:
            bad[outcome].append((case, detail))

    one()
    return counts, bad


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=1000, help="examples per fuzzer")
    p.add_argument("--fuzzer", choices=[*F.MODEL_FUZZERS, "all"], default="all")
    p.add_argument("--show", type=int, default=3, help="BAD cases printed per outcome")
    p.add_argument("--kind", choices=F.KINDS, help="mutate files of this kind only")
    args = p.parse_args()
    if args.kind:
        F.KINDS[:] = [args.kind]
    names = list(F.MODEL_FUZZERS) if args.fuzzer == "all" else [args.fuzzer]
    any_bad = False
    for name in names:
        t0 = time.perf_counter()
        counts, bad = run(name, args.examples, args.show)
        dt = time.perf_counter() - t0
        total = sum(counts.values())
        print(f"\n== {name}: {total} examples in {dt:.1f} s")
        for outcome, k in counts.most_common():
            print(f"  {outcome:<45} {k:>7}  {100 * k / max(total, 1):5.1f}%")
        for outcome, cases in bad.items():
            any_bad = True
            for case, detail in cases:
                print(f"  {outcome}: {detail}\n      case: {case!r}"[:1500])
    return 1 if any_bad else 0


if __name__ == "__main__":
    sys.exit(main())
