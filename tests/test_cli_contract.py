"""The CLI contract on hostile input: unreadable files are skipped the same way in every
command, control characters in names never break line output, and every error is one
line naming the user's own path."""

from __future__ import annotations

import contextlib
import json
import os
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import audiogmm
from audiogmm.cli.options import escape_name

from .conftest_hostile import (
    assert_one_line_error,
    invoke,
    public_folder,
    small_classifier_model,
    speaker_clips,
    unprivileged,
)

_CONTROL = "".join(map(chr, range(32))) + "\x7f"
COMMANDS = ["extract", "train", "evaluate", "predict"]
#: these tests train and evaluate on the same files on purpose (the contract, not accuracy)
OVERLAP = "--allow-train-overlap"


@pytest.fixture(scope="module")
def locked_world():
    """Two speakers x 3 readable clips + one unreadable clip; a model trained as root."""
    with public_folder() as root:
        data = root / "data"
        for spk in ("ast_en", "flite_slt"):
            (data / spk).mkdir(parents=True)
            for c in speaker_clips(spk, 3):
                shutil.copy(c, data / spk / c.name)
        for d in [data, *data.iterdir()]:
            os.chmod(d, 0o755)
        model = root / "m.npz"
        r = invoke(["-q", "train", data, "--split", "all", "-o", model, "-k", "2", "-j", "1",
                    "--max-iter", "5"])  # fmt: skip
        assert r.exit_code == 0, r.output
        os.chmod(model, 0o644)
        good = sorted((data / "ast_en").glob("*.flac"))[0]
        # warm every command as root (imports, numba, click's help and usage-error
        # formatting) before running as nobody, who cannot read lazily imported modules
        for cmd in COMMANDS:
            invoke([cmd, "--help"])
            invoke([cmd])
        assert invoke(["-q", "predict", "-j", "1", model, good]).exit_code == 0
        assert (
            invoke(["-q", "evaluate", model, data, "--split", "all", "-j", "1", OVERLAP]).exit_code
            == 0
        )
        locked = data / "ast_en" / "locked.flac"
        shutil.copy(speaker_clips("ast_en", 5)[4], locked)
        os.chmod(locked, 0)
        out = root / "out"
        out.mkdir()
        os.chmod(out, 0o777)
        yield {"data": data, "model": model, "good": good, "locked": locked, "out": out}


def _args(command: str, w: dict, n: int = 0) -> list:
    return {
        "extract": ["extract", w["data"], "--cache", w["out"] / f"cache{n}"],
        "train": ["train", w["data"], "--split", "all", "-o", w["out"] / f"m{n}.npz", "-k", "2",
                  "--max-iter", "5"],
        "evaluate": ["evaluate", w["model"], w["data"], "--split", "all", OVERLAP],
        "predict": ["predict", w["model"], w["good"], w["locked"]],
    }[command]  # fmt: skip


@pytest.mark.parametrize("with_cache", [False, True])
@pytest.mark.parametrize("command", COMMANDS)
def test_unreadable_input_is_skipped_in_every_command(command, with_cache, locked_world):
    w = locked_world
    args = _args(command, w, int(with_cache))
    if with_cache and command != "extract":
        args += ["--cache", w["out"] / f"c-{command}"] if command != "predict" else []
    with unprivileged():
        r = invoke(["-q", *args, "-j", "1", "--json"])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    skipped = out["skipped"]
    assert [os.path.basename(s["path"]) for s in skipped] == ["locked.flac"], skipped
    assert "permission denied" in skipped[0]["reason"].lower(), skipped[0]["reason"]
    if command == "predict":
        assert [os.path.basename(x["path"]) for x in out["results"]] == [w["good"].name]


@pytest.mark.parametrize("command", COMMANDS)
def test_human_output_lists_the_unreadable_file(command, locked_world):
    w = locked_world
    with unprivileged():
        r = invoke(["-q", *_args(command, w, 2), "-j", "1"])
    assert r.exit_code == 0, r.output
    assert "locked.flac" in r.stderr and "permission denied" in r.stderr.lower(), r.stderr
    if command == "predict":
        assert len(r.stdout.splitlines()) == 1 and r.stdout.startswith(str(w["good"]))


def test_predict_with_only_unreadable_files_is_one_line_error(locked_world):
    w = locked_world
    with unprivileged():
        r = invoke(["-q", "predict", "-j", "1", w["model"], w["locked"]])
    assert r.exit_code == 1
    assert "locked.flac" in r.stderr and "Traceback" not in r.output


def test_control_characters_in_names_are_escaped(tmp_path):
    clip = speaker_clips("flite_slt", 1)[0]
    names = ["new\nline.flac", "tab\there.flac", "bell\x07carriage\rreturn.flac",
             "esc\x1b[31mred.flac", "del\x7f.flac", "back\\slash.flac", "plain.flac"]  # fmt: skip
    files = []
    for n in names:
        shutil.copy(clip, tmp_path / n)
        files.append(tmp_path / n)
    bad = tmp_path / "broken\nfile.wav"
    bad.write_bytes(b"not audio at all" * 100)
    model = small_classifier_model(str(tmp_path))
    r = invoke(["-q", "predict", "-j", "1", model, *files, bad])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == len(names), f"one line per file expected:\n{r.stdout!r}"
    for line, f in zip(lines, files):
        fields = line.split("\t")
        assert len(fields) == 2, f"fields broken by a control character: {line!r}"
        assert not any(c in _CONTROL for c in fields[0]), repr(fields[0])
        assert fields[0] == escape_name(str(f))
        assert fields[1] in ("a", "b")
    err_lines = r.stderr.splitlines()
    assert not any(c in _CONTROL.replace("\n", "") for c in r.stderr), repr(r.stderr)
    listed = [ln for ln in err_lines if "broken" in ln and "file.wav" in ln]
    assert listed, r.stderr


@settings(max_examples=200, deadline=None, database=None)
@given(st.text())
def test_escaped_names_are_one_printable_line(name):
    out = escape_name(name)
    assert len(out.splitlines()) <= 1 and "\t" not in out, repr(out)
    assert not any(c in _CONTROL for c in out), repr(out)
    out.encode("utf-8")  # never a lone surrogate: always printable to a UTF-8 terminal
    if name.isprintable():
        assert out == name


def test_escaping_examples():
    assert escape_name("a\nb\tc\x1b[0m") == "a\\nb\\tc\\x1b[0m"
    assert escape_name("back\\slash é.wav") == "back\\slash é.wav"  # Windows paths read as is
    assert escape_name("bidi\u202eevil") == "bidi\\u202eevil"
    assert escape_name("line\u2028sep") == "line\\u2028sep"
    assert escape_name(b"caf\xe9.wav".decode("utf-8", "surrogateescape")) == "caf\\xe9.wav"


@pytest.mark.parametrize("command", COMMANDS)
def test_json_output_keeps_names_exact(command, tmp_path):
    """--json is for machines: names are kept as they are (JSON escapes them itself)."""
    data = tmp_path / "data"
    for spk in ("ast_en", "flite_slt"):
        (data / spk).mkdir(parents=True)
        for i, c in enumerate(speaker_clips(spk, 2)):
            shutil.copy(c, data / spk / f"{spk}\n{i}.flac")
    (data / "ast_en" / "bad\tone.wav").write_bytes(b"junk" * 100)
    model = tmp_path / "m.npz"
    assert invoke(["-q", "train", data, "--split", "all", "-o", model, "-k", "1", "-j", "1",
                   "--max-iter", "3"]).exit_code == 0  # fmt: skip
    args = {
        "extract": ["extract", data, "--cache", tmp_path / "c"],
        "train": ["train", data, "--split", "all", "-o", tmp_path / "m2.npz", "-k", "1",
                  "--max-iter", "3"],
        "evaluate": ["evaluate", model, data, "--split", "all", OVERLAP],
        "predict": ["predict", model, *sorted((data / "ast_en").iterdir())],
    }[command]  # fmt: skip
    r = invoke(["-q", *args, "-j", "1", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [os.path.basename(s["path"]) for s in out["skipped"]] == ["bad\tone.wav"]


# -- one-line errors naming the user's path ------------------------------------------


@contextlib.contextmanager
def _nothing():
    yield


@pytest.mark.parametrize(
    "case",
    ["model_is_text", "model_is_audio", "data_unreadable_csv", "config_not_json",
     "config_not_utf8", "config_bad_field", "model_is_folder_file"],
)  # fmt: skip
def test_every_error_is_one_line_naming_the_path(case, tmp_path):
    clip = speaker_clips("ast_en", 1)[0]
    if case == "model_is_text":
        p = tmp_path / "model.npz"
        p.write_text("not a model\n")
        args = ["predict", "-j", "1", p, clip]
    elif case == "model_is_audio":
        p = tmp_path / "model.npz"
        shutil.copy(clip, p)
        args = ["info", p]
    elif case == "data_unreadable_csv":
        p = tmp_path / "data.csv"
        p.write_bytes(b"\xff\xfe\x00garbage\x00\n\x00")
        args = ["extract", p, "--cache", tmp_path / "c"]
    elif case.startswith("config"):
        p = tmp_path / "cfg.json"
        p.write_bytes({"config_not_json": b"{not json", "config_not_utf8": b"\xff\xfe{}",
                       "config_bad_field": b'{"sample_rate": 1}'}[case])  # fmt: skip
        args = ["extract", speaker_clips("ast_en", 1)[0].parent, "--config", p,
                "--cache", tmp_path / "c"]  # fmt: skip
    else:
        p = tmp_path / "model.npz"
        p.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
        args = ["info", p]
    with _nothing():
        r = invoke(["-q", *args])
    assert_one_line_error(r, p)


def test_error_lines_escape_control_characters(tmp_path):
    p = tmp_path / "evil\nmodel\x1b[2J.npz"
    p.write_text("not a model")
    r = invoke(["-q", "info", p])
    assert r.exit_code == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and escape_name(str(p)) in lines[0], r.stderr
    assert "\x1b" not in r.stderr


def test_audio_errors_keep_naming_the_file(tmp_path):
    p = tmp_path / "x.wav"
    p.write_bytes(b"junk" * 50)
    with pytest.raises(audiogmm.AudioError) as e:
        audiogmm.extract(p)
    assert str(p) in str(e.value)


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_nothing_usable_is_an_error_naming_a_file(command, tmp_path):
    """When every input is skipped there is no result to report: exit 1, with the reason."""
    data = tmp_path / "data"
    for y in ("a", "b"):
        (data / y).mkdir(parents=True)
        (data / y / "x.wav").write_bytes(b"junk" * 100)
    model = small_classifier_model(str(tmp_path))
    args = {
        "train": ["train", data, "--split", "all", "-o", tmp_path / "m.npz"],
        "evaluate": ["evaluate", model, data, "--split", "all", OVERLAP],
        "predict": ["predict", model, data / "a" / "x.wav"],
    }[command]
    r = invoke(["-q", *args, "-j", "1"])
    assert r.exit_code == 1, r.output
    last = r.stderr.strip().splitlines()[-1]
    assert "Error" in last and ("x.wav" in last or "listed above" in last), r.stderr
    assert "nan" not in r.output


def test_labels_with_control_characters_keep_the_output_lines(tmp_path):
    """Labels come from folder names: a newline or ESC in one must not break any output."""
    data = tmp_path / "data"
    labels = ["new\nline", "esc\x1b[31m"]
    for y, spk in zip(labels, ("ast_en", "flite_slt")):
        (data / y).mkdir(parents=True)
        for c in speaker_clips(spk, 3):
            shutil.copy(c, data / y / c.name)
    model = tmp_path / "m\tmodel.npz"
    outs = [
        invoke(["-q", "train", data, "--split", "all", "-o", model, "-k", "1", "-j", "1",
                "--max-iter", "3"]),
        invoke(["-q", "evaluate", model, data, "--split", "all", "-j", "1", OVERLAP]),
        invoke(["-q", "predict", "--top", "2", "-j", "1", model,
                *sorted((data / labels[0]).iterdir())]),
        invoke(["-q", "info", model]),
        invoke(["-q", "extract", data, "--cache", tmp_path / "c\nache", "-j", "1"]),
    ]  # fmt: skip
    for r in outs:
        assert r.exit_code == 0, r.output
        assert not any(c in _CONTROL.replace("\n", "").replace("\t", "") for c in r.output), (
            r.output
        )
    assert len(outs[2].stdout.splitlines()) == 3
    confusion = outs[1].stdout.splitlines()
    assert sum("new\\nline" in ln for ln in confusion) >= 2, confusion  # header and its row


@pytest.mark.parametrize("exc", [ValueError("x\ny"), TypeError("t"), MemoryError(), KeyError("k")])
def test_an_unexpected_exception_is_still_one_line(exc, tmp_path, monkeypatch):
    import audiogmm.pipeline

    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(audiogmm.pipeline, "load_model", boom)
    model = small_classifier_model(str(tmp_path))
    r = invoke(["-q", "info", model])
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and type(exc).__name__ in lines[0], r.stderr
