"""The model container: the hardened zip/npz reader against plain ``np.load`` and safetensors.

For a classifier of L classes x K components x D dims (three float64 arrays of L*K*D
values, plus floors), each variant writes one file and loads it in a fresh process
(median of ``--repeat`` runs); the loading process reports its wall time and the
growth of its peak RSS over the state after imports. Prints one JSON line per variant:

* ``audiogmm``: :meth:`GMMClassifier.load` (every check of the loader, validation included);
* ``npz-np.load``: ``np.load(allow_pickle=False)`` of the same file, no checks (the old reader);
* ``safetensors``: ``safetensors.numpy.load_file`` of the same arrays plus the JSON header as
  ``__metadata__`` (parse only, no validation). Skipped when safetensors is not installed.

Run::

    python benchmarks/bench_container.py --labels 100 --components 256 --dims 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from audiogmm.models import GMMClassifier  # noqa: E402

_CHILD = r"""
import json, sys, time
def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
variant, path = sys.argv[1], sys.argv[2]
import numpy as np
if variant == "audiogmm":
    import audiogmm.io.modelfile  # noqa: F401  (the loader's modules, imported before the clock)
    from audiogmm.models import GMMClassifier
    load = GMMClassifier.load
elif variant == "npz-np.load":
    def load(p):
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
else:
    from safetensors.numpy import load_file
    load = load_file
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
base = status("VmRSS")
t0 = time.perf_counter()
load(path)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "growth": status("VmHWM") - base}))
"""


def fake_classifier(L: int, K: int, D: int) -> GMMClassifier:
    rng = np.random.default_rng(0)
    clf = GMMClassifier(K)
    clf.labels_ = [f"class{i:04d}" for i in range(L)]
    clf.weights_ = np.full((L, K), 1.0 / K)
    clf.means_ = rng.normal(size=(L, K, D))
    clf.variances_ = rng.uniform(0.5, 2.0, size=(L, K, D))
    clf.var_floors_ = np.full((L, D), 1e-3)
    clf.fit_report_ = {}
    return clf


def measure(variant: str, path: str, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
        }
        r = subprocess.run([sys.executable, "-c", _CHILD, variant, path],
                           capture_output=True, text=True, env=env, check=True)  # fmt: skip
        runs.append(json.loads(r.stdout))
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_growth_mb": statistics.median(r["growth"] for r in runs) / 2**20,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--components", type=int, default=256)
    p.add_argument("--dims", type=int, default=60)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    clf = fake_classifier(a.labels, a.components, a.dims)
    with tempfile.TemporaryDirectory() as d:
        npz = os.path.join(d, "m.npz")
        clf.save(npz)
        files = {"audiogmm": npz, "npz-np.load": npz}
        try:
            from safetensors.numpy import save_file

            from audiogmm.io.container import read_container

            header, arrays = read_container(npz, kind="GMMClassifier")
            st = os.path.join(d, "m.safetensors")
            save_file(arrays, st, metadata={"header": json.dumps(header)})
            files["safetensors"] = st
        except ImportError:
            pass
        for variant, path in files.items():
            out = {
                "what": f"load {variant}",
                "labels": a.labels,
                "K": a.components,
                "D": a.dims,
                "file_mb": round(os.path.getsize(path) / 2**20, 2),
                **measure(variant, path, a.repeat),
            }
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
