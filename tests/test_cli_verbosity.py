"""`python -m audiogmm`, -v/-vv/-q on either side of the subcommand, and the help texts."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from audiogmm import DiagGMM
from audiogmm.cli import main
from audiogmm.io import save

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("two_speakers")
    for spk in ("ast_en", "flite_awb"):
        (d / spk).mkdir()
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:3]:
            shutil.copy(f, d / spk / f.name)
    return d


def audiogmm(*args, cwd):
    """``python -m audiogmm ARGS`` in a fresh process (the logging set-up is per process)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "audiogmm", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_python_dash_m_runs_the_cli(tmp_path):
    r = audiogmm("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("audiogmm")
    r = audiogmm("train", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "Usage: audiogmm train" in r.stdout


@pytest.mark.parametrize(
    "before, after, level",
    [
        ([], [], logging.WARNING),
        (["-v"], [], logging.INFO),
        (["-vv"], [], logging.DEBUG),
        ([], ["-v"], logging.INFO),
        ([], ["-vv"], logging.DEBUG),
        (["-v"], ["-v"], logging.DEBUG),  # the two places add up
        (["-v"], ["-q"], logging.WARNING),
        ([], ["-q", "-q"], logging.ERROR),
    ],
)
def test_verbosity_on_either_side_of_the_subcommand(tmp_path, before, after, level):
    X = np.random.default_rng(0).normal(size=(200, 2))
    save(DiagGMM(2, random_state=0).fit(X), tmp_path / "g.npz")
    r = CliRunner().invoke(main, [*before, "info", str(tmp_path / "g.npz"), *after])
    assert r.exit_code == 0, r.output
    assert logging.getLogger("audiogmm").level == level


@pytest.mark.slow
def test_vv_logs_every_em_iteration(small_data, tmp_path):
    train = ["train", small_data, "-o", tmp_path / "m.npz", "-k", "2", "--max-iter", "3"]
    train += ["--split", "all", "--jobs", "1"]
    runs = {flag: audiogmm(*flag, *train, cwd=tmp_path) for flag in ((), ("-v",), ("-vv",))}
    for r in runs.values():
        assert r.returncode == 0, r.stderr
    plain, v, vv = (runs[f].stderr for f in ((), ("-v",), ("-vv",)))
    assert "INFO" not in plain and "DEBUG" not in plain
    assert "INFO" in v and "EM iteration" not in v
    assert "DEBUG" in vv and "EM iteration 1: mean log-likelihood" in vv


@pytest.mark.parametrize(
    "command, options",
    [
        ("train", ["--init", "--max-iter", "--train-fraction", "--components", "-v", "-q"]),
        ("evaluate", ["--train-fraction", "-v", "-q"]),
        ("extract", ["--format", "--allow-pipes", "-v", "-q"]),
    ],
)
def test_every_option_has_help_text(command, options):
    cmd = main.commands[command]
    documented = {
        o: p.help for p in cmd.params for o in getattr(p, "opts", []) if getattr(p, "help", None)
    }
    for o in options:
        assert documented.get(o), f"{command} {o} has no help text"
    out = CliRunner().invoke(main, [command, "--help"]).output
    assert "-vv also every EM iteration" in out
