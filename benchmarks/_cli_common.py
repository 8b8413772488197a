"""Helpers for the benchmarks that time whole command-line processes (bench_cli, bench_accuracy).

Nothing here imports audiogmm: both sides run as fresh processes, and this module only
writes manifests, builds command lines and environments, and times ``subprocess.run``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from _common import ROOT

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")
REFERENCE = os.path.join(ROOT, "benchmarks", "reference", "sklearn_gmm.py")
SAMPLES = os.path.join(ROOT, "data_samples")


@dataclass
class Dataset:
    name: str  # e.g. "small", "large-sounds", or the NAME of --data NAME=PATH
    source: str  # a folder with one sub-folder per label, or a CSV path,label[,split]
    csv: str = ""  # the written manifest (path,label,split, absolute paths)
    n_train: int = 0
    n_test: int = 0
    n_classes: int = 0
    audio_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    #: share of each class's files in the training split (when the source has no split)
    train_fraction: float = 0.7
    #: or this many training files per class (the rest are test files), if set
    train_count: int | None = None


def devcorpus_root() -> str:
    return os.environ.get("AUDIOGMM_DEVCORPUS") or os.path.expanduser("~/.cache/audiogmm/devcorpus")


def _has_audio(folder: str) -> bool:
    if not os.path.isdir(folder):
        return False
    for _, _, files in os.walk(folder):
        if any(f.lower().endswith(AUDIO_EXTENSIONS) for f in files):
            return True
    return False


def devcorpus_datasets(prefix: str = "large-") -> tuple[list[Dataset], str | None]:
    """The development corpus folders that exist, or a skip message.

    ``realsounds/`` (real recordings at their own levels, 20-22 clips per class) is split
    45/55, about 10 training clips per class, as few as the held-out sets we are judged on;
    ``hardspeakers/`` (11-18 clips per speaker) keeps 8 training clips per speaker.
    """
    root = devcorpus_root()
    fractions = {"speakers": 0.7, "sounds": 0.7, "speakers8k": 0.7, "realsounds": 0.45}
    found = [
        Dataset(prefix + sub, os.path.join(root, sub), train_fraction=frac)
        for sub, frac in fractions.items()
        if _has_audio(os.path.join(root, sub))
    ]
    if _has_audio(os.path.join(root, "hardspeakers")):
        found.append(Dataset(prefix + "hardspeakers", os.path.join(root, "hardspeakers"),
                             train_count=8))  # fmt: skip
    if found:
        return found, None
    return [], (
        f"development corpus not found at {root} (no audio under speakers/ or sounds/; "
        "set AUDIOGMM_DEVCORPUS): skipping the large size"
    )


def sample_datasets(*, quick: bool = False) -> list[Dataset]:
    """The bundled ``data_samples/`` as the CLI benchmarks size them: small (its speakers),
    and medium (its sounds) unless ``quick``."""
    small = [Dataset("small", os.path.join(SAMPLES, "speakers"))]
    return small if quick else [*small, Dataset("medium", os.path.join(SAMPLES, "sounds"))]


def parse_data_overrides(items: list[str] | None) -> list[Dataset]:
    out = []
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--data expects NAME=PATH, got {item!r}")
        path = os.path.abspath(os.path.expanduser(path))
        if not os.path.exists(path):
            raise SystemExit(f"--data {name}: {path} does not exist")
        out.append(Dataset(name, path))
    return out


def _list_records(source: str) -> list[tuple[str, str, str | None]]:
    """(absolute path, label, split or None) from a label-per-folder tree or a CSV."""
    if os.path.isfile(source):
        folder = os.path.dirname(source)
        with open(source, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        return [
            (
                os.path.normpath(os.path.join(folder, r["path"].strip())),
                r["label"].strip(),
                (r.get("split") or "").strip() or None,
            )
            for r in rows
            if r.get("path")
        ]
    recs = []
    for label in sorted(os.listdir(source)):
        sub = os.path.join(source, label)
        if not os.path.isdir(sub):
            continue
        for dirpath, _, files in sorted(os.walk(sub)):
            for f in sorted(files):
                if f.lower().endswith(AUDIO_EXTENSIONS):
                    recs.append((os.path.join(dirpath, f), label, None))
    return recs


def stratified_split(
    recs: list[tuple[str, str, str | None]],
    train_fraction: float = 0.7,
    seed: int = 0,
    train_count: int | None = None,
) -> list[tuple[str, str, str]]:
    """Deterministic 70/30 split per class: each label's sorted paths shuffled with
    ``random.Random(f"{seed}:{label}")``; at least one train and (n >= 2) one test file.
    ``train_count`` (if given) replaces the fraction: that many training files per class."""
    by_label: dict[str, list[str]] = {}
    for path, label, _ in recs:
        by_label.setdefault(label, []).append(path)
    split_of = {}
    for label, paths in by_label.items():
        paths = sorted(paths)
        random.Random(f"{seed}:{label}").shuffle(paths)
        n = len(paths)
        want = round(train_fraction * n) if train_count is None else train_count
        n_train = min(max(1, want), n - 1) if n >= 2 else n
        for i, p in enumerate(paths):
            split_of[p] = "train" if i < n_train else "test"
    return [(p, label, split_of[p]) for p, label, _ in recs]


def write_manifest(
    ds: Dataset, out_dir: str, *, train_fraction: float | None = None, seed: int = 0
):
    """Write ``out_dir/manifest.csv`` (path,label,split) for ``ds`` and fill its counts.

    A CSV source that already has a split column for every row keeps it."""
    recs = _list_records(ds.source)
    if not recs:
        raise SystemExit(f"{ds.name}: no audio files found in {ds.source}")
    if not all(s for _, _, s in recs):
        frac = ds.train_fraction if train_fraction is None else train_fraction
        recs = stratified_split(recs, frac, seed, ds.train_count)
    os.makedirs(out_dir, exist_ok=True)
    ds.csv = os.path.join(out_dir, "manifest.csv")
    with open(ds.csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        w.writerows(recs)
    ds.n_train = sum(s == "train" for _, _, s in recs)
    ds.n_test = sum(s == "test" for _, _, s in recs)
    ds.n_classes = len({label for _, label, _ in recs})
    try:
        import soundfile as sf

        ds.audio_s = float(sum(sf.info(p).duration for p, _, _ in recs))
    except Exception:  # duration is informative only
        ds.audio_s = float("nan")
    return ds


def audiogmm_exe() -> str:
    """The ``audiogmm`` console script of this interpreter (not a pyenv/conda shim)."""
    here = os.path.join(os.path.dirname(sys.executable), "audiogmm")
    if os.path.exists(here):
        return here
    found = shutil.which("audiogmm")
    if not found:
        raise SystemExit("the audiogmm console script is not installed (pip install -e .)")
    return found


def base_env() -> dict[str, str]:
    """The environment of every run: audiogmm resolves to this checkout, and Python
    reads and writes .pyc files as on a user's machine (``PYTHONDONTWRITEBYTECODE`` and
    ``PYTHONPYCACHEPREFIX`` are removed; the first would recompile audiogmm in every run)."""
    env = dict(os.environ)
    paths = [ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != ROOT]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("PYTHONPYCACHEPREFIX", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


class ColdCaches:
    """Fresh, empty caches for one cold run, as on the first run after ``pip install``.

    * ``numba``: a new, empty ``NUMBA_CACHE_DIR``, so every numba function that runs
      (audiogmm's kernels, librosa's in the reference) is compiled again;
    * ``pkg``: audiogmm's sources copied to a new folder without ``__pycache__`` and put
      first on ``PYTHONPATH``, so every audiogmm module is byte-compiled again (pip
      byte-compiles at install time, so this is slightly pessimistic);
    * ``all_pyc``: a new ``PYTHONPYCACHEPREFIX``, so every module of every package,
      the standard library included, is byte-compiled again (far more pessimistic than
      a fresh install: pip byte-compiles numpy, scipy, librosa and scikit-learn too).

    The folder is removed on exit. The OS page cache is not dropped.
    """

    def __init__(self, numba: bool = True, pkg: bool = True, all_pyc: bool = False):
        self.numba, self.pkg, self.all_pyc = numba, pkg, all_pyc

    def __enter__(self) -> dict[str, str]:
        self.dir = tempfile.mkdtemp(prefix="audiogmm-cold-")
        env = base_env()
        if self.numba:
            env["NUMBA_CACHE_DIR"] = os.path.join(self.dir, "numba")
        if self.pkg:
            src = os.path.join(self.dir, "src")
            shutil.copytree(
                os.path.join(ROOT, "audiogmm"), os.path.join(src, "audiogmm"),
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"),
            )  # fmt: skip
            env["PYTHONPATH"] = os.pathsep.join([src, env["PYTHONPATH"]])
        if self.all_pyc:
            env["PYTHONPYCACHEPREFIX"] = os.path.join(self.dir, "pyc")
        return env

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Run:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    cpu_s: float = float("nan")  # user + sys of the process and the children it reaped

    def json(self) -> dict[str, Any]:
        """The last line of stdout that parses as a JSON object."""
        for line in reversed(self.stdout.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        raise ValueError(f"no JSON object on stdout: {self.stdout[-300:]!r}")

    def last_error(self) -> str:
        lines = [ln for ln in self.stderr.strip().splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit code {self.returncode}"


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _machine_busy() -> float | None:
    """CPU seconds the whole machine has been busy (``/proc/stat``: user, nice, system, irq,
    softirq; not idle, iowait or a hypervisor's steal), or None without it."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _, _, irq, softirq = map(int, f.readline().split()[1:8])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def run(cmd: list[str], env: dict[str, str], *, check: bool = True) -> Run:
    """Wall time of one fresh process (``time.perf_counter`` around ``subprocess.run``).

    Also its CPU time (user + sys), which a busy machine disturbs less than the wall time:
    from ``getrusage(RUSAGE_CHILDREN)``, or, when larger, the machine's busy time during the
    command (``/proc/stat``), which also counts the command's worker processes (a
    forkserver's children, which rusage misses) but also anything else running then: on
    an idle machine, the command's.
    """
    c0, m0 = _children_cpu(), _machine_busy()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall, cpu, m1 = time.perf_counter() - t0, _children_cpu() - c0, _machine_busy()
    if m0 is not None and m1 is not None:
        cpu = max(cpu, m1 - m0)
    r = Run(wall, p.returncode, p.stdout, p.stderr, cpu)
    if check and p.returncode != 0:
        sys.stderr.write(r.stderr[-3000:])
        raise SystemExit(f"command failed with exit code {p.returncode}: {' '.join(cmd)}")
    return r


def reference_cmd(manifest: str, frontend: str = "speech", extra: list[str] | None = None):
    return [sys.executable, REFERENCE, manifest, "--frontend", frontend, "--json", *(extra or [])]


def wilson(k: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n."""
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)
