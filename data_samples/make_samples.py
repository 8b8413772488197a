"""Regenerate the small audio sample set shipped in ``data_samples/``.

Everything here is derived from Debian (bookworm) packages; nothing is fetched at
test time.  The script is *not* run in CI.  To regenerate (Debian/Ubuntu, as root)::

    apt-get update
    apt-get install -y flite fluidsynth      # the two renderers (binaries only)
    python data_samples/make_samples.py      # downloads .debs, extracts, converts, checks

``python data_samples/make_samples.py --check`` only re-runs the sanity check on the
files already present.  ``--build-dir`` (default ``/tmp/samples_build``) holds the
downloaded ``.deb`` files (``apt-get download PKG``) and their extracted trees
(``dpkg-deb -x PKG_*.deb root``); the data packages are never installed.

Output (see ``data_samples/README.md`` for sources, versions and licences):

* ``speakers/<speaker>/<speaker>_NN.flac`` -- 16 kHz mono 16-bit FLAC, 2-6 s each.
  Five recorded Asterisk prompt voices (8 kHz telephone-band originals, upsampled)
  and four CMU Flite voices reading distinct sentences from ``fortunes-min``.
* ``sounds/<class>/<class>_NN.flac`` -- 22050 Hz mono 16-bit FLAC, 1-3 s each.
  Drum-kit hits (kick, snare, tom, hihat, crash, ride) read directly from the
  16-bit PCM of the two AVL Drumkits SF2 files, and three-note phrases of piano /
  violin / flute rendered from FluidR3_GM with fluidsynth (reverb and chorus off).
* ``metadata.csv`` -- one row per clip: path, label, source package/version and
  the source item (prompt file, SF2 sample name, MIDI notes, or the spoken text).

Processing is limited to: resampling (soxr HQ), trimming (sound clips: leading /
trailing silence of rendered notes, cut at a zero crossing to <= 3 s; drum hits
shorter than 1 s are zero-padded) and peak normalisation to 0.9.  All selections
are deterministic (sorted listings, fixed seeds).
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

HERE = Path(__file__).resolve().parent
SPEAKER_SR = 16000
SOUND_SR = 22050
CLIPS_PER_CLASS = 12
PEAK = 0.9
SPEAKER_DUR = (2.0, 6.0)
SOUND_DUR = (1.0, 3.0)

# Debian packages used (all "Architecture: all" data packages, extracted, not installed).
AST_VOICES = {
    # speaker label: (package, directory under usr/share/asterisk/sounds)
    "ast_en": ("asterisk-core-sounds-en-wav", "en_US_f_Allison"),
    "ast_fr": ("asterisk-core-sounds-fr-wav", "fr_CA_f_June"),
    "ast_it": ("asterisk-core-sounds-it-wav", "it_IT_m_Carlo"),
    "ast_ru": ("asterisk-core-sounds-ru-wav", "ru_RU_f_IvrvoiceRU"),
    "menardi_it": ("asterisk-prompt-it-menardi-wav", "it_IT_f_Menardi"),
}
FLITE_VOICES = ("awb", "rms", "slt", "kal")
DRUM_PKG = "avldrums.lv2-soundfont"
DRUM_SF2 = ("Black_Pearl_4_LV2.sf2", "Red_Zeppelin_4_LV2.sf2")
GM_PKG = "fluid-soundfont-gm"
GM_SF2 = "FluidR3_GM.sf2"
TEXT_PKG = "fortunes-min"
DATA_PACKAGES = [p for p, _ in AST_VOICES.values()] + [DRUM_PKG, GM_PKG, TEXT_PKG]

# GM programs and note ranges for the rendered instruments.
INSTRUMENTS = {
    "piano": (0, 43, 84),
    "violin": (40, 55, 88),
    "flute": (73, 60, 91),
}
NOTES_PER_CLIP = 3  # a clip is a short phrase: more pitches per clip, steadier class models


# ----------------------------------------------------------------------------- helpers


def run(cmd: list[str], cwd: Path | None = None) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def fetch_packages(build: Path) -> dict[str, str]:
    """``apt-get download`` + ``dpkg-deb -x`` every data package; return versions."""
    debs = build / "debs"
    root = build / "root"
    debs.mkdir(parents=True, exist_ok=True)
    versions = {}
    for pkg in DATA_PACKAGES:
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if not found:
            print(f"apt-get download {pkg}")
            run(["apt-get", "download", pkg], cwd=debs)
            found = sorted(debs.glob(f"{pkg}_*.deb"))
        deb = found[-1]
        run(["dpkg-deb", "-x", str(deb), str(root)])
        out = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
        )
        versions[pkg] = out.stdout.strip()
    for tool in ("flite", "fluidsynth"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: run `apt-get install -y flite fluidsynth` first")
        versions[tool] = installed_version(tool)
    versions["libflite1"] = installed_version("libflite1")  # holds the flite voices
    return versions


def installed_version(pkg: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def to_mono_float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=1) if x.ndim == 2 else x


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    return soxr.resample(x, sr_in, sr_out, quality="HQ")


def peak_normalise(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x)))
    if peak <= 0:
        raise ValueError("silent clip")
    return x * (PEAK / peak)


def cut_at_zero_crossing(x: np.ndarray, n_max: int) -> np.ndarray:
    """Truncate to at most ``n_max`` samples, ending at the last sign change."""
    if len(x) <= n_max:
        return x
    head = x[:n_max]
    sign_change = np.nonzero(np.signbit(head[:-1]) != np.signbit(head[1:]))[0]
    end = int(sign_change[-1]) + 1 if len(sign_change) else n_max
    return x[:end]


def fit_length(x: np.ndarray, sr: int, dur: tuple[float, float]) -> np.ndarray:
    x = cut_at_zero_crossing(x, int(dur[1] * sr))
    n_min = int(np.ceil(dur[0] * sr))
    if len(x) < n_min:
        x = np.concatenate([x, np.zeros(n_min - len(x))])
    return x


def trim_silence(x: np.ndarray, rel_db: float = -60.0) -> np.ndarray:
    thr = np.max(np.abs(x)) * 10 ** (rel_db / 20)
    idx = np.nonzero(np.abs(x) > thr)[0]
    return x[idx[0] : idx[-1] + 1] if len(idx) else x


def write_clip(path: Path, x: np.ndarray, sr: int) -> float:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = peak_normalise(x)
    sf.write(str(path), x.astype(np.float32), sr, subtype="PCM_16", format="FLAC")
    return len(x) / sr


def even_pick(items: list, n: int) -> list:
    """``n`` items spread evenly over a sorted list (deterministic)."""
    if len(items) <= n:
        return list(items)
    idx = np.round(np.linspace(0, len(items) - 1, n)).astype(int)
    return [items[i] for i in idx]


# ----------------------------------------------------------------------------- speakers


def make_asterisk(root: Path, versions: dict[str, str], rows: list[dict]) -> None:
    base = root / "usr/share/asterisk/sounds"
    for label, (pkg, voice_dir) in AST_VOICES.items():
        cands = []
        for f in sorted((base / voice_dir).glob("*.wav")):  # top level prompts only
            info = sf.info(str(f))
            if SPEAKER_DUR[0] + 0.05 <= info.duration <= SPEAKER_DUR[1] - 0.05:
                cands.append(f)
        chosen = even_pick(cands, CLIPS_PER_CLASS)
        for i, f in enumerate(chosen):
            x, sr = sf.read(str(f))
            y = resample(to_mono_float(x), sr, SPEAKER_SR)
            out = HERE / "speakers" / label / f"{label}_{i:02d}.flac"
            dur = write_clip(out, y, SPEAKER_SR)
            rows.append(
                row(out, "speakers", label, pkg, versions[pkg], f"{voice_dir}/{f.name}", dur)
            )
        print(f"  {label}: {len(chosen)} clips from {len(cands)} candidate prompts")


def fortune_sentences(root: Path) -> list[str]:
    """Short single-line fortunes that read well as one TTS sentence."""
    text = (root / "usr/share/games/fortunes/fortunes").read_text(encoding="latin-1")
    out = []
    for entry in text.split("\n%\n"):
        entry = entry.strip()
        if "\n" in entry or not 35 <= len(entry) <= 85:
            continue
        if not re.fullmatch(r"[A-Za-z][A-Za-z ,.'!?;:-]*[.!?]", entry):
            continue
        if entry.upper() == entry:
            continue
        out.append(re.sub(r"\s+", " ", entry))
    out = sorted(set(out))
    order = np.random.default_rng(20240611).permutation(len(out))
    return [out[i] for i in order]


def make_flite(root: Path, versions: dict[str, str], rows: list[dict]) -> None:
    sentences = fortune_sentences(root)
    used: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        for v_idx, voice in enumerate(FLITE_VOICES):
            label = f"flite_{voice}"
            n = 0
            # voice k starts at sentence k and steps by the number of voices; sentences
            # that come out too short/long are skipped (never reused by another voice).
            for s_idx in range(v_idx, len(sentences), len(FLITE_VOICES)):
                if n == CLIPS_PER_CLASS:
                    break
                sentence = sentences[s_idx]
                if sentence in used:
                    continue
                used.add(sentence)
                txt = tmpd / "text.txt"
                txt.write_text(sentence + "\n", encoding="ascii")
                wav = tmpd / "out.wav"
                run(["flite", "-voice", voice, "-f", str(txt), "-o", str(wav)])
                x, sr = sf.read(str(wav))
                if not SPEAKER_DUR[0] + 0.05 <= len(x) / sr <= SPEAKER_DUR[1] - 0.05:
                    continue
                y = resample(to_mono_float(x), sr, SPEAKER_SR)
                out = HERE / "speakers" / label / f"{label}_{n:02d}.flac"
                dur = write_clip(out, y, SPEAKER_SR)
                rows.append(
                    row(out, "speakers", label, "libflite1", versions["libflite1"], sentence, dur)
                )
                n += 1
            print(f"  {label}: {n} clips")


# ----------------------------------------------------------------------------- SF2 drums


def riff_chunks(buf: bytes, start: int, end: int):
    """Yield (id, data_offset, size) of the RIFF chunks in ``buf[start:end]``."""
    off = start
    while off + 8 <= end:
        cid, size = struct.unpack_from("<4sI", buf, off)
        yield cid, off + 8, size
        off += 8 + size + (size & 1)


def read_sf2_samples(path: Path) -> list[dict]:
    """Parse an SF2 file: every ``shdr`` record with its 16-bit PCM data."""
    buf = path.read_bytes()
    if buf[:4] != b"RIFF" or buf[8:12] != b"sfbk":
        raise ValueError(f"{path} is not a SoundFont 2 file")
    smpl = shdr = None
    for cid, off, size in riff_chunks(buf, 12, len(buf)):
        if cid != b"LIST":
            continue
        list_type = buf[off : off + 4]
        for sub, soff, ssize in riff_chunks(buf, off + 4, off + size):
            if list_type == b"sdta" and sub == b"smpl":
                smpl = np.frombuffer(buf, dtype="<i2", count=ssize // 2, offset=soff)
            elif list_type == b"pdta" and sub == b"shdr":
                shdr = buf[soff : soff + ssize]
    if smpl is None or shdr is None:
        raise ValueError(f"{path}: missing sdta/smpl or pdta/shdr")
    samples = []
    for i in range(len(shdr) // 46 - 1):  # the last record is the terminal "EOS"
        name, start, end, _sl, _el, rate, pitch, _corr, _link, stype = struct.unpack_from(
            "<20sIIIIIBbHH", shdr, 46 * i
        )
        if stype & 0x8000:  # ROM sample: no data in the file
            continue
        samples.append(
            {
                "name": name.split(b"\0")[0].decode("latin-1"),
                "rate": rate,
                "pitch": pitch,
                "data": smpl[start:end].astype(np.float64) / 32768.0,
            }
        )
    return samples


CHOKE_NOTES = {50, 52, 58}  # cymbal choke (hand-muted) samples of the AVL kits


def drum_class(name: str) -> str | None:
    m = re.match(r"(\d+)-(.*)", name)
    if not m:
        return None
    note, desc = int(m.group(1)), m.group(2).lower()
    # names are cut to 20 characters ("41-Ludwig16FloorTo-1", "57-SabianAAX17Cras-1"),
    # hence the truncated keywords
    if "kick" in desc:
        return "kick"
    if "snare" in desc:
        return "snare"
    if "tom" in desc or "floorto" in desc:
        return "tom"
    if "hat" in desc:
        return "hihat"
    if note in CHOKE_NOTES:
        return None
    if "cras" in desc or "spla" in desc:
        return "crash"
    if "ride" in desc:
        return "ride"
    return None  # side stick, clap, tambourine, cowbell, maraca, chokes, note 60 (Paiste)


def same_recording(a: np.ndarray, b: np.ndarray, n: int = 32768, thr: float = 0.95) -> bool:
    """Peak normalised cross-correlation of the first ``n`` samples (any lag) >= thr."""
    a, b = a[:n], b[:n]
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xc = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    denom = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return bool(denom > 0 and np.max(np.abs(xc)) / denom >= thr)


def make_drums(root: Path, versions: dict[str, str], rows: list[dict]) -> None:
    sf2_dir = root / "usr/share/sounds/sf2"
    # pool[class][(kit, note)] -> sorted list of samples (velocity layers)
    pool: dict[str, dict[tuple[str, int], list[dict]]] = {}
    for kit_file in DRUM_SF2:
        kit = kit_file.split("_4_")[0]
        for smp in read_sf2_samples(sf2_dir / kit_file):
            cls = drum_class(smp["name"])
            if cls is None:
                continue
            smp["kit"] = kit
            note = int(smp["name"].split("-")[0])
            pool.setdefault(cls, {}).setdefault((kit, note), []).append(smp)
    for cls in sorted(pool):
        groups = [sorted(g, key=lambda s: s["name"]) for _, g in sorted(pool[cls].items())]
        # round robin over kit pieces; within a piece step through the layers 0,2,4,1,3..
        order = []
        max_layers = max(len(g) for g in groups)
        for r in range(max_layers):
            for g in groups:
                if r < len(g):
                    order.append(g[(2 * r) % len(g)] if len(g) % 2 else g[r])
        # the kits share some recordings (also under different names, rescaled or
        # re-trimmed): skip anything that is a near copy of a sample already chosen
        chosen: list[dict] = []
        for smp in order:
            if len(chosen) == CLIPS_PER_CLASS:
                break
            if not any(same_recording(smp["data"], c["data"]) for c in chosen):
                chosen.append(smp)
        for i, smp in enumerate(chosen):
            y = resample(smp["data"], smp["rate"], SOUND_SR)
            y = fit_length(y, SOUND_SR, SOUND_DUR)
            out = HERE / "sounds" / cls / f"{cls}_{i:02d}.flac"
            dur = write_clip(out, y, SOUND_SR)
            item = f"{smp['kit']}_4_LV2.sf2:{smp['name']}"
            rows.append(row(out, "sounds", cls, DRUM_PKG, versions[DRUM_PKG], item, dur))
        n_all = sum(len(g) for g in groups)
        print(f"  {cls}: {len(chosen)} clips (from {n_all} samples, shared copies included)")


# ----------------------------------------------------------------------------- instruments


def _vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, program: int, notes: list[tuple[int, int, float, float]], end: float):
    """Type-0 MIDI file, one channel; ``notes`` = (key, velocity, onset s, length s).

    480 ticks per quarter note at 120 bpm, i.e. 960 ticks per second.
    """
    tps = 960
    events = [(0, 0, bytes([0xFF, 0x51, 0x03]) + (500000).to_bytes(3, "big"))]
    events.append((0, 1, bytes([0xC0, program])))
    for key, vel, onset, length in notes:
        events.append((round(onset * tps), 3, bytes([0x90, key, vel])))
        events.append((round((onset + length) * tps), 2, bytes([0x80, key, 0])))
    events.append((round(end * tps), 4, bytes([0xFF, 0x2F, 0x00])))
    track, last = b"", 0
    for tick, _prio, data in sorted(events):  # note-offs before note-ons at equal ticks
        track += _vlq(tick - last) + data
        last = tick
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    path.write_bytes(header + b"MTrk" + struct.pack(">I", len(track)) + track)


def instrument_phrases(k: int, lo: int, hi: int) -> list[list[tuple[int, int, float, float]]]:
    """``CLIPS_PER_CLASS`` short phrases of NOTES_PER_CLIP notes, keys spread over lo..hi."""
    rng = np.random.default_rng(1000 + k)
    n_notes = CLIPS_PER_CLASS * NOTES_PER_CLIP
    keys = np.round(np.linspace(lo, hi, n_notes)).astype(int)[rng.permutation(n_notes)]
    phrases = []
    for i in range(CLIPS_PER_CLASS):
        t, phrase = 0.0, []
        length = 2.3 / NOTES_PER_CLIP
        for j in range(NOTES_PER_CLIP):
            vel = int(rng.integers(60, 128))
            dur = round(float(rng.uniform(0.8, 1.0)) * length, 2)
            phrase.append((int(keys[i * NOTES_PER_CLIP + j]), vel, round(t, 2), dur))
            t += dur
        phrases.append(phrase)
    return phrases


def make_instruments(root: Path, versions: dict[str, str], rows: list[dict]) -> None:
    sf2 = root / "usr/share/sounds/sf2" / GM_SF2
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        for k, (cls, (program, lo, hi)) in enumerate(INSTRUMENTS.items()):
            for i, phrase in enumerate(instrument_phrases(k, lo, hi)):
                mid, wav = tmpd / "notes.mid", tmpd / "notes.wav"
                end = phrase[-1][2] + phrase[-1][3] + 1.5  # room for the release
                write_midi(mid, program, phrase, end)
                run(
                    ["fluidsynth", "-q", "-ni", "-R", "0", "-C", "0", "-g", "0.5",
                     "-O", "float", "-T", "wav", "-r", str(SOUND_SR),
                     "-F", str(wav), str(sf2), str(mid)]
                )  # fmt: skip
                x, sr = sf.read(str(wav))
                y = trim_silence(resample(to_mono_float(x), sr, SOUND_SR))
                y = fit_length(y, SOUND_SR, SOUND_DUR)
                out = HERE / "sounds" / cls / f"{cls}_{i:02d}.flac"
                dur = write_clip(out, y, SOUND_SR)
                item = (
                    f"{GM_SF2} program {program}; (key, velocity, onset s, length s): "
                    + " ".join(f"({n},{v},{t:.2f},{d:.2f})" for n, v, t, d in phrase)
                )
                rows.append(row(out, "sounds", cls, GM_PKG, versions[GM_PKG], item, dur))
            print(f"  {cls}: {CLIPS_PER_CLASS} clips")


# ----------------------------------------------------------------------------- checks


def row(path: Path, group: str, label: str, pkg: str, ver: str, item: str, dur: float) -> dict:
    return {
        "path": path.relative_to(HERE).as_posix(),
        "group": group,
        "label": label,
        "source_package": pkg,
        "source_version": ver,
        "source_item": item,
        "duration_s": f"{dur:.3f}",
    }


def check(min_clips: int = 10) -> bool:
    """Load every FLAC and verify rate, channels, duration, level and finiteness."""
    spec = {"speakers": (SPEAKER_SR, SPEAKER_DUR), "sounds": (SOUND_SR, SOUND_DUR)}
    ok = True
    print(f"{'group':9s} {'class':12s} {'clips':>5s} {'mean s':>7s} {'min s':>6s} {'max s':>6s}")
    for group, (sr_want, (dmin, dmax)) in spec.items():
        classes = sorted(p for p in (HERE / group).iterdir() if p.is_dir())
        for cdir in classes:
            durs = []
            for f in sorted(cdir.glob("*.flac")):
                x, sr = sf.read(str(f), dtype="float64", always_2d=True)
                dur = x.shape[0] / sr
                errs = []
                if sr != sr_want:
                    errs.append(f"rate {sr}")
                if x.shape[1] != 1:
                    errs.append(f"{x.shape[1]} channels")
                if sf.info(str(f)).subtype != "PCM_16":
                    errs.append("not PCM_16")
                if not dmin - 1e-3 <= dur <= dmax + 1e-3:
                    errs.append(f"duration {dur:.3f}s")
                if not np.all(np.isfinite(x)):
                    errs.append("non-finite")
                elif np.max(np.abs(x)) <= 0.05:
                    errs.append("silent")
                if errs:
                    ok = False
                    print(f"  BAD {f.relative_to(HERE)}: {', '.join(errs)}")
                durs.append(dur)
            if len(durs) < min_clips:
                ok = False
                print(f"  BAD {group}/{cdir.name}: only {len(durs)} clips")
            d = np.array(durs) if durs else np.zeros(1)
            print(
                f"{group:9s} {cdir.name:12s} {len(durs):5d} {d.mean():7.2f} "
                f"{d.min():6.2f} {d.max():6.2f}"
            )
    total = sum(os.path.getsize(f) for f in glob.glob(str(HERE / "**/*.flac"), recursive=True))
    print(f"total FLAC size: {total / 1e6:.2f} MB")
    print("sanity check:", "OK" if ok else "FAILED")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", type=Path, default=Path("/tmp/samples_build"))
    ap.add_argument("--check", action="store_true", help="only check the existing files")
    args = ap.parse_args()
    if not args.check:
        build = args.build_dir.resolve()
        versions = fetch_packages(build)
        root = build / "root"
        for sub in ("speakers", "sounds"):
            shutil.rmtree(HERE / sub, ignore_errors=True)
        rows: list[dict] = []
        print("speakers (asterisk prompts)")
        make_asterisk(root, versions, rows)
        print("speakers (flite)")
        make_flite(root, versions, rows)
        print("sounds (avldrums SF2)")
        make_drums(root, versions, rows)
        print("sounds (fluidsynth + FluidR3_GM)")
        make_instruments(root, versions, rows)
        rows.sort(key=lambda r: r["path"])
        with open(HERE / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print("package versions:", versions)
    sys.exit(0 if check() else 1)


if __name__ == "__main__":
    main()
