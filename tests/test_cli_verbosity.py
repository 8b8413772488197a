"""`python -m audiogmm`, -v/-vv/-q on either side of the subcommand, and the help texts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from audiogmm.cli import main

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


@pytest.mark.slow
def test_verbosity_levels_and_placement(small_data, tmp_path):
    train = ["train", small_data, "-o", tmp_path / "m.npz", "-k", "2", "--max-iter", "3"]
    train += ["--split", "all", "--jobs", "1"]

    def stderr(*flags_before, flags_after=()):
        r = audiogmm(*flags_before, *train, *flags_after, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        return r.stderr

    plain, v, vv = stderr(), stderr("-v"), stderr("-vv")
    assert "INFO" not in plain and "DEBUG" not in plain
    assert "INFO" in v and "EM iteration" not in v
    assert "DEBUG" in vv and "EM iteration 1: mean log-likelihood" in vv
    # the same after the subcommand, and the two places add up
    assert "EM iteration" in stderr(flags_after=["-vv"])
    assert "EM iteration" in stderr("-v", flags_after=["-v"])
    after_q = stderr("-v", flags_after=["-q"])
    assert "INFO" not in after_q
    # -q after the subcommand: the command's own warnings still show, notes do not
    quiet = stderr(flags_after=["-q"])
    assert "INFO" not in quiet and "DEBUG" not in quiet


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
