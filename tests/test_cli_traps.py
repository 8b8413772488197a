"""Where features meet (issue 20: options mean one thing, the scale path, every scorer honours
the split) and the traps of issue 21 (MAP warnings, help, NaN in output, papercuts)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from audiogmm.cli import main
from audiogmm.io import load
from audiogmm.mixture import DiagGMM
from audiogmm.pipeline import load_model

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT / "data_samples" / "speakers"


def run(args, code=0):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output
    return r


def strict_json(text):
    """json.loads refusing NaN/Infinity (what every other JSON parser does)."""

    def bad(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=bad)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """3 speakers x 6 clips, a folder per label."""
    base = tmp_path_factory.mktemp("traps") / "data"
    for spk in ("ast_en", "flite_slt", "menardi_it"):
        (base / spk).mkdir(parents=True)
        for f in sorted((SPEAKERS / spk).glob("*.flac"))[:6]:
            shutil.copy(f, base / spk / f.name)
    return base


@pytest.fixture(scope="module")
def store_and_ubm(data, tmp_path_factory):
    d = tmp_path_factory.mktemp("scale")
    run(["-q", "extract", data, "--cache", d / "cache", "--shards", d / "store", "-j", "1"])
    import logging

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("audiogmm").addHandler(handler)
    try:  # --max-iter 2: a budget run in full, which is no failure to converge
        r = run(["ubm", d / "store", "-k", "4", "--max-iter", "2", "-o", d / "ubm.npz", "-j", "1"])
    finally:
        logging.getLogger("audiogmm").removeHandler(handler)
    r.logged = "\n".join(x.getMessage() for x in records)
    return d / "store", d / "ubm.npz", r


# -- issue 20 item 4: -k means one thing per backend; options that do not apply are refused ----


def test_map_k_is_the_ubm_size(data, tmp_path):
    r = run(["-q", "train", data, "--backend", "map", "-k", "4", "-o", tmp_path / "m.npz",
             "-j", "1", "--json"])  # fmt: skip
    assert json.loads(r.output)["n_components"] == 4
    assert load_model(tmp_path / "m.npz").classifier.ubm_.n_components == 4
    # the hidden alias agrees, or it is a usage error
    run(["train", data, "--backend", "map", "-k", "4", "--ubm-components", "4", "-o",
         tmp_path / "m2.npz", "-j", "1", "-q"])  # fmt: skip
    r = run(["train", data, "--backend", "map", "-k", "4", "--ubm-components", "8", "-o",
             tmp_path / "m3.npz"], code=2)  # fmt: skip
    assert "-k 4" in r.output and "--ubm-components 8" in r.output


@pytest.mark.parametrize(
    "args, named",
    [
        (["--relevance", "4"], "--relevance"),
        (["--adapt", "mw"], "--adapt"),
        (["--reject-far", "0.1"], "--reject-far"),
        (["--ubm-components", "8"], "--ubm-components"),
    ],
)
def test_map_options_with_the_ml_backend_are_usage_errors(data, tmp_path, args, named):
    r = run(["train", data, "-o", tmp_path / "m.npz", "--backend", "ml", *args], code=2)
    assert named in r.output and "--backend map" in r.output
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize(
    "backend, args, readers",
    [
        ("ml", ["--relevance", "4"], "--backend map or gsv only"),
        ("ml", ["--adapt", "mw"], "--backend map only"),
        ("ml", ["--ubm-components", "8"], "--backend map, gsv or ivector only"),
        ("ivector", ["--relevance", "4"], "--backend map or gsv only"),
        ("gsv", ["--reject-far", "0.1"], "--backend map only"),
    ],
)
def test_a_refused_backend_option_names_the_backends_that_read_it(data, tmp_path, backend,
                                                                   args, readers):
    # the ml backend once said "--relevance applies to --backend map, gsv or ivector only",
    # though ivector refuses --relevance too
    r = run(["train", data, "-o", tmp_path / "m.npz", "--backend", backend, *args], code=2)
    assert f"{args[0]} applies to {readers}" in r.output


def test_preset_auto_without_k_tunes_the_front_end_at_the_default_k(data, tmp_path):
    out = json.loads(run(["-q", "train", data, "-o", tmp_path / "m.npz", "--preset", "auto",
                          "--backend", "ml", "-j", "1", "--max-iter", "3", "--json"]).output)
    assert out["selection"]["components_rule"] == "fixed" and out["backend"] == "ml"
    assert set(out["selection"]["n_components"].values()) == {16}
    assert not [r for r in out["selection"]["table"] if r["stage"] == "backend"]  # ml alone


@pytest.mark.parametrize("args, named", [(["-k", "8"], "-k 8"), (["--max-iter", "3"], "--max-iter"),
                                         (["--relevance", "4"], "--relevance")])
def test_ml_options_under_auto_need_backend_ml(data, tmp_path, args, named):
    # auto also tries gsv at its defaults, where -k 8 or --max-iter 3 would not apply: refused
    r = run(["train", data, "-o", tmp_path / "m.npz", "--preset", "auto", *args], code=2)
    assert named in r.output and "--backend ml" in r.output
    assert not (tmp_path / "m.npz").exists()


def test_preset_auto_with_config_is_a_usage_error(data, tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"n_mfcc": 13}')
    r = run(["train", data, "-o", tmp_path / "m.npz", "--preset", "auto", "--config", cfg],
            code=2)  # fmt: skip
    assert "--config" in r.output and "--preset auto" in r.output


def test_audio_options_on_a_store_are_usage_errors(store_and_ubm, tmp_path):
    store, _, _ = store_and_ubm
    for args, named in ((["--preset", "speech"], "--preset"), (["--split", "test"], "--split")):
        r = run(["train", store, "-o", tmp_path / "m.npz", "-k", "2", *args], code=2)
        assert named in r.output and "shard store" in r.output


# -- issue 20 item 5: the scale path ends in a classifier ----------------------------------------


def test_ubm_records_its_front_end_and_train_adapts_from_it(data, store_and_ubm, tmp_path):
    store, ubm_path, r = store_and_ubm
    assert "2 EM iterations" in r.output
    assert "converge" not in r.logged and "converge" not in r.output  # issue 21.12
    ubm = load(ubm_path, DiagGMM)
    assert ubm.file_header_["feature_config"] == load_model_config(store)
    info = run(["info", ubm_path]).output
    assert "--ubm" in info
    clip = sorted((data / "ast_en").glob("*.flac"))[0]
    r = run(["predict", ubm_path, clip], code=1)  # not a classifier: says how to make one
    assert "--backend map --ubm" in r.output
    for source, n in ((data, None), (store, 18)):  # audio files, and the store itself
        out = tmp_path / f"m{n}.npz"
        r = run(["train", source, "--backend", "map", "--ubm", ubm_path, "-o", out, "-j", "1",
                 "--json"])  # fmt: skip
        clf = load_model(out).classifier
        for a in ("means_", "variances_", "weights_"):
            np.testing.assert_array_equal(getattr(clf.ubm_, a), getattr(ubm, a))
        assert json.loads(r.output)["n_components"] == 4
    # the UBM's size is the file's; its front end is the model's
    r = run(["train", data, "--backend", "map", "--ubm", ubm_path, "-k", "8", "-o",
             tmp_path / "x.npz"], code=2)  # fmt: skip
    assert "-k" in r.output or "--components" in r.output
    r = run(["train", data, "--backend", "map", "--ubm", ubm_path, "--preset", "sound", "-o",
             tmp_path / "x.npz"], code=2)  # fmt: skip
    assert "front end" in r.output
    r = run(["train", data, "--backend", "ml", "--ubm", ubm_path, "-o", tmp_path / "x.npz"],
            code=2)  # fmt: skip
    assert "--ubm" in r.output and "--backend map" in r.output
    # the default backend (gsv) adapts from it too
    r = run(["train", data, "--ubm", ubm_path, "-o", tmp_path / "g.npz", "-j", "1", "--json"])
    assert json.loads(r.output)["backend"] == "gsv" and json.loads(r.output)["n_components"] == 4


def load_model_config(store):
    from audiogmm.data.shards import open_store
    from audiogmm.pipeline.sources import store_config

    return store_config(open_store(store)).to_dict()


def test_info_says_a_map_model_is_one(data, tmp_path):
    model = tmp_path / "m.npz"
    run(["-q", "train", data, "--backend", "map", "-k", "4", "--relevance", "8", "--adapt", "mw",
         "--reject-far", "0.3", "-o", model, "-j", "1"])  # fmt: skip
    text = run(["info", model]).output
    assert "map" in text and "UBM of 4" in text and "relevance 8" in text
    assert "means and weights" in text and "threshold:" in text
    out = json.loads(run(["info", model, "--json"]).output)
    assert out["backend"] == "map"
    assert out["map"]["ubm_components"] == 4 and out["map"]["adapt"] == "mw"
    assert out["map"]["threshold"] is not None


# -- issue 20 item 6: every scorer honours the stored split ---------------------------------------


@pytest.fixture(scope="module")
def map_model(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("map") / "map.npz"
    run(["-q", "train", data, "--backend", "map", "-k", "4", "--reject-far", "0.3", "-o", path,
         "-j", "1"])  # fmt: skip
    return path


def test_verify_refuses_training_files(data, map_model, tmp_path):
    trained = sorted(Path(p) for p in _train_paths(data))
    trials = tmp_path / "trials.csv"
    rows = [f"{p},{p.parent.name},1" for p in trained[:2]]
    rows += [f"{trained[0]},menardi_it,0"] if trained[0].parent.name != "menardi_it" else []
    trials.write_text("path,claim,target\n" + "\n".join(rows) + "\n")
    r = run(["verify", map_model, trials], code=1)
    assert "used to train" in r.output and trained[0].name in r.output
    assert "--allow-train-overlap" in r.output
    run(["verify", map_model, trials, "--allow-train-overlap", "-q"])


def _train_paths(data):
    from audiogmm.data import select
    from audiogmm.pipeline.classify import load_split

    return [r.path for r in select(load_split(data, "train"), "train")]


def test_evaluate_reject_refuses_training_files(data, map_model):
    r = run(["evaluate", map_model, data, "--split", "train", "--reject", "auto"], code=1)
    assert "used to train" in r.output


# -- issue 21 item 4: the oversize rule knows the backend ----------------------------------------


def test_map_does_not_warn_per_class_about_k(data, tmp_path, caplog):
    run(["train", data, "--backend", "map", "-k", "16", "-o", tmp_path / "m.npz", "-j", "1"])
    assert "class " not in caplog.text and "--components auto" not in caplog.text
    # a UBM too large for the pooled frames is named as such, with MAP's advice
    small = tmp_path / "small"
    for spk in ("ast_en", "flite_slt"):
        (small / spk).mkdir(parents=True)
        shutil.copy(sorted((data / spk).glob("*.flac"))[0], small / spk)
    caplog.clear()
    run(["train", small, "--backend", "map", "-k", "64", "--split", "all", "-o",
         tmp_path / "s.npz", "-j", "1"])  # fmt: skip
    assert "the UBM: K=64" in caplog.text and "UBM size" in caplog.text
    assert "class '" not in caplog.text and "--components auto" not in caplog.text
    assert "single file: ast_en, flite_slt" in caplog.text  # issue 21.13


# -- issue 21 item 6: no NaN or Infinity in JSON ------------------------------------------------


def test_json_output_has_no_nan_or_infinity():
    from audiogmm.pipeline.report import json_dumps

    text = json_dumps({"eer_threshold": float("inf"), "rate": float("nan"), "x": [1.5]})
    assert strict_json(text) == {"eer_threshold": None, "rate": None, "x": [1.5]}


# -- issue 21 item 13: papercuts --------------------------------------------------------------


def test_one_class_is_not_classes(data, tmp_path):
    one = tmp_path / "one"
    shutil.copytree(data / "ast_en", one / "ast_en")
    r = run(["train", one, "-o", tmp_path / "m.npz", "-k", "2", "--split", "all", "-j", "1"])
    assert "trained 1 class " in r.output


# -- issue 21 item 7: Ctrl-C ------------------------------------------------------------------


def _interrupt(args, tmp_path, ready):
    """Run ``audiogmm ARGS`` in its own session, Ctrl-C it (the whole group, as a terminal
    does) once stderr shows ``ready``; return (exit code, seconds to exit, stderr, live
    processes left in the session)."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "audiogmm", *map(str, args)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)  # fmt: skip
    err, seen = [], threading.Event()

    def read():
        for line in p.stderr:
            err.append(line)
            if ready in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert seen.wait(120), "".join(err)
    time.sleep(0.3)  # into the work
    t0 = time.monotonic()
    os.killpg(p.pid, signal.SIGINT)
    p.wait(30)
    dt = time.monotonic() - t0
    reader.join(10)
    time.sleep(0.3)
    ps = subprocess.run(["ps", "-o", "stat=,pid=,cmd=", "-s", str(p.pid)], capture_output=True,
                        text=True).stdout.splitlines()  # fmt: skip
    return p.returncode, dt, "".join(err), [x for x in ps if not x.strip().startswith("Z")]


@pytest.fixture(scope="module")
def long_files(tmp_path_factory):
    import soundfile as sf

    base = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(0)
    for lab in ("a", "b"):
        (base / lab).mkdir()
        noise = (0.1 * rng.standard_normal(16000 * 240)).astype(np.float32)  # 4 minutes
        sf.write(base / lab / "long.wav", noise, 16000, subtype="PCM_16")
    return base


@pytest.mark.parametrize("dask", [[], ["--dask", "local:2"]])
def test_ctrl_c_exits_130_at_once_leaving_nothing(long_files, tmp_path, dask):
    pytest.importorskip("distributed") if dask else None
    out = tmp_path / "m.npz"
    code, dt, err, left = _interrupt(
        ["-v", "train", long_files, "-o", out, "--cache", tmp_path / "cache", "--split", "all",
         "-k", "2", "-j", "2", *dask], tmp_path, "executor:")  # fmt: skip
    assert code == 130, err
    assert dt < 2.0, dt  # ~1 s on an idle machine; the 2 shared cores of CI are slower
    assert "Traceback" not in err and "Aborted" not in err and "interrupted" in err
    assert not out.exists() and not left, left
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".tmp")]


def test_dask_is_quiet(store_and_ubm, tmp_path):
    """No `INFO distributed.*` chatter (35 lines before), even less with -qq (issue 21.12)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("distributed")
    store, _, _ = store_and_ubm
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for quiet in ([], ["-qq"]):
        p = subprocess.run([sys.executable, "-m", "audiogmm", *quiet, "train", str(store), "-k",
                            "2", "-o", str(tmp_path / "m.npz"), "--dask", "local:2"],
                           env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert "distributed" not in p.stderr and "Traceback" not in p.stderr, p.stderr


# -- issue 21 item 5: help from the real defaults; item 9: tune ----------------------------------


def test_help_shows_the_real_defaults():
    ev = " ".join(run(["evaluate", "--help"]).output.split("Options:")[1].split())
    seed = ev[ev.index("--seed"):ev.index("--train-fraction")]
    assert "[default: 0]" not in seed and "stored split" in seed
    frac = ev[ev.index("--train-fraction"):ev.index("--split")]
    assert "0.7" not in frac and "stored split" in frac
    tune = run(["tune", "--help"]).output.split("Options:")[1]
    preset = tune[tune.index("--preset"):tune.index("--config")]
    assert "[default: auto]" in " ".join(preset.split())
    train = " ".join(run(["train", "--help"]).output.split())
    assert "UBM (gsv, the default backend: 64; map 64; ivector 256)" in train
    assert "per class (--backend ml, default 16)" in train and "[default: gsv]" in train
    assert "runs exactly 10" in train


def test_tune_with_a_fixed_configuration_prints_its_accuracy(data):
    out = json.loads(run(["-q", "tune", data, "--preset", "sound", "-k", "2", "--backend", "ml",
                          "-j", "1", "--json"]).output)  # fmt: skip
    (row,) = out["selection"]["table"]
    assert row["front_end"] == "sound" and row["components"] == "K=2" and row["n"] == 12
    assert 0 <= row["accuracy"] <= 1 and row["chosen"]
    text = run(["-q", "tune", data, "--preset", "sound", "-k", "2", "--backend", "ml", "-j",
                "1"]).output  # fmt: skip
    assert "K=2" in text and "/12" in text


@pytest.mark.parametrize("args, named", [(["-k", "2"], "-k 2"), (["--backend", "gsv"], "--backend gsv"),
                                         (["--preset", "sound", "-k", "4"], "--backend ml")])
def test_tune_refuses_what_train_would_not_apply(data, args, named):
    # as train: a number for -k is the ml models' K, which the default backend does not read
    r = run(["tune", data, *args], code=2)
    assert named in r.output


def test_components_auto_names_the_preset_in_its_table(data, tmp_path):
    out = json.loads(run(["-q", "train", data, "-o", tmp_path / "m.npz", "--components", "auto",
                          "-j", "1", "--json"]).output)  # fmt: skip
    assert {r["front_end"] for r in out["selection"]["table"]} <= {"general", "gsv"}
    assert out["selection"]["front_end"] == "general"


def test_tune_backend_ml_compares_ml_models_alone(data):
    sel = json.loads(run(["-q", "tune", data, "--backend", "ml", "-j", "1", "--json"]).output)[
        "selection"]  # fmt: skip
    assert sel["backend"] == "ml" and not [r for r in sel["table"] if r["stage"] == "backend"]
    sel = json.loads(run(["-q", "tune", data, "-j", "1", "--json"]).output)["selection"]
    assert [r["front_end"] for r in sel["table"] if r["stage"] == "backend"][0] == "gsv"


def test_tune_warns_when_the_data_is_too_small(data, tmp_path, caplog):
    small = tmp_path / "small"
    for spk in ("ast_en", "flite_slt"):
        shutil.copytree(data / spk, small / spk)
    run(["-q", "tune", small, "--split", "all", "-j", "1", "--folds", "2"])
    assert "only 12 training clips to cross-validate" in caplog.text


# -- issue 21 item 6: no nan% in text; item 11: reports -------------------------------------------


def test_open_set_rates_over_no_clips_are_not_nan(data, map_model):
    r = run(["evaluate", map_model, data, "--reject", "auto", "-j", "1"])
    line = next(x for x in r.output.splitlines() if x.startswith("open set:"))
    assert "nan" not in line and "n/a (no unknown clips) of 0 unknown" in line
    out = strict_json(run(["-q", "evaluate", map_model, data, "--reject", "auto", "-j", "1",
                           "--json"]).output)  # fmt: skip
    assert out["open_set"]["false_accept"] is None


def test_report_folder_holds_only_this_evaluation(data, map_model, tmp_path):
    ml = tmp_path / "ml.npz"
    run(["-q", "train", data, "-o", ml, "--backend", "ml", "-k", "2", "--max-iter", "3", "-j", "1"])
    rep = tmp_path / "rep"
    r = run(["evaluate", ml, data, "--report", rep, "-j", "1"])
    assert (rep / "training_curves.json").exists() and str(rep) in r.output
    run(["-q", "evaluate", map_model, data, "--report", rep, "-j", "1"])  # MAP: the UBM's only
    assert list(json.loads((rep / "training_curves.json").read_text())) == ["(UBM)"]
    assert (rep / "metrics.json").exists()


def test_fused_training_curves_name_every_member():
    from audiogmm.features import FeatureConfig
    from audiogmm.models import FusedClassifier, GMMClassifier
    from audiogmm.pipeline.classify import Bundle
    from audiogmm.pipeline.report import training_report

    rng = np.random.default_rng(0)
    clips = [rng.normal(m, 1, (200, 2)) for m in (0, 0, 4, 4)]
    members = [GMMClassifier(2, max_iter=3, random_state=s).fit(clips, ["a", "a", "b", "b"])
               for s in (0, 1)]  # fmt: skip
    sel = {"front_end": "general + sound"}
    bundle = Bundle(FusedClassifier(members), FeatureConfig(), {"selection": sel})
    rep = training_report(bundle)
    assert sorted(rep) == ["a (general)", "a (sound)", "b (general)", "b (sound)"]
    assert rep["b (sound)"] is members[1].fit_report_["b"]


def test_papercuts(data, map_model, tmp_path, caplog):
    # an OSError is the path and the reason, never a Python class name
    (tmp_path / "afile").write_text("")
    r = run(["train", data, "-o", tmp_path / "afile" / "m.npz"], code=1)
    assert str(tmp_path / "afile") in r.output and "Error:" in r.output
    assert "NotADirectoryError" not in r.output and "FileNotFoundError" not in r.output
    # top-level help: each command's whole first line
    top = run(["--help"]).output
    assert "..." not in top.split("Commands:")[1].split("Exit codes")[0]
    # predict on a folder without audio names it
    empty = tmp_path / "empty"
    empty.mkdir()
    assert str(empty) in run(["predict", map_model, empty], code=2).output
    # --reject auto without a calibrated threshold, in CLI words
    plain = tmp_path / "plain.npz"
    run(["-q", "train", data, "--backend", "map", "-k", "2", "-o", plain, "-j", "1"])
    clip = sorted((data / "ast_en").glob("*.flac"))[0]
    r = run(["predict", plain, clip, "--reject", "auto"], code=1)
    assert "--reject-far" in r.output and "reject=" not in r.output and "reject_far" not in r.output
    # a file given twice is classified once, and said so
    r = run(["predict", map_model, clip, clip])
    assert len(r.output.strip().splitlines()) == 1 and "more than once" in caplog.text
    # skipped files: one list (the count is the library's warning), none with -qq
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    r = run(["predict", map_model, bad, clip])
    assert r.output.count(str(bad)) == 1 and "skipped 1 file(s)" not in r.output
    r = run(["-qq", "predict", map_model, bad, clip])
    assert str(bad) not in r.output


def test_every_option_has_help():
    import click

    missing = [f"{name} {max(p.opts, key=len)}" for name, cmd in main.commands.items()
               for p in cmd.params
               if isinstance(p, click.Option) and not p.hidden and not p.help]  # fmt: skip
    assert not missing, missing
