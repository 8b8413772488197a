"""Build the audiogmm *development corpus* from Debian packages (not committed).

The bundled ``data_samples/`` set is too small and too familiar to choose defaults
on.  This script builds a larger, different corpus into a cache folder:

* ``sounds/<class>/<class>_NN.flac`` -- 22050 Hz mono 16-bit FLAC, 1-4 s.  GM
  instrument families and GM percussion pieces rendered from *other* soundfonts than
  the bundled set (MuseScore General, TimGM6mb, FluidR3 GS sound effects) with
  fluidsynth, plus real recordings: Hydrogen drum-kit samples, GCompris instrument
  and animal recordings, the bucklespring keyboard recordings, game sound effects
  (Hedgewars, Freeciv) and the Oxygen desktop sounds.
* ``speakers/<speaker>/<speaker>_NN.flac`` -- 16 kHz mono 16-bit FLAC, 2-6 s.  Real
  human speech: Hedgewars voice packs, KLettres and KTuberling voice sets (one per
  language), Asterisk prompt voices.
* ``speakers8k/`` -- the same speaker clips resampled to 8 kHz (telephone band).
* ``realsounds/<class>/<class>_NN.flac`` -- a harder sound set: mono 16-bit FLAC at
  the source's own rate (22.05-48 kHz, else 44.1 kHz), 0.25-5 s, **at the source's
  level** (no normalisation, no padding; only digital silence trimmed, long recordings
  cut into pieces).  Drum-kit pieces from Hydrogen kits and LMMS, hand drums,
  shakers, instruments (real recordings plus fluidsynth renders from three
  soundfonts at varied velocities), birds and mammals (Widelands, Scratch, GCompris),
  water (Red Eclipse, Scratch, GCompris).  Each class mixes several sources,
  interleaved over the clip numbers.
* ``hardspeakers/<speaker>/<speaker>_NN.flac`` -- 16 kHz mono 16-bit FLAC, 1.5-6 s,
  11-18 clips per speaker (8 for training in the benchmarks).  Real human speech,
  short utterances joined without pauses: Hedgewars characters, Kajongg voices
  (English and German), KTuberling languages, English KLettres, Codec 2 radio
  recordings, Asterisk voices through two codecs.
* ``metadata.csv`` -- path, group, label, source_package, source_version,
  source_item, duration_s, source_sr (native sample rate(s) of the source audio).

Usage (Debian/Ubuntu, as root; the data packages are downloaded with
``apt-get download`` and unpacked with ``dpkg-deb -x`` -- never installed; only the
renderer is installed)::

    apt-get update
    apt-get install -y fluidsynth
    python benchmarks/data/make_devcorpus.py            # build what is missing
    python benchmarks/data/make_devcorpus.py --force    # rebuild from scratch
    python benchmarks/data/make_devcorpus.py --check    # validate an existing build
    python benchmarks/data/make_devcorpus.py --groups realsounds   # only that group

``--groups`` (comma-separated: sounds, speakers, realsounds, hardspeakers; default all) selects
what is built, rebuilt (``--force``) or checked; the other groups, their folders and
their ``metadata.csv`` rows are left as they are.  A group counts as built once
``metadata.csv`` lists it.

Output folder: ``--out DIR``, else ``$AUDIOGMM_DEVCORPUS``, else
``~/.cache/audiogmm/devcorpus``.  Downloads and unpacked trees go to ``--build-dir``
(default ``/tmp/devcorpus_build``).  Everything is deterministic: sorted listings,
fixed seeds (``zlib.crc32`` of the label, never Python's salted ``hash``).

Processing (sounds/, speakers/): mono mix-down, resampling (soxr HQ), silence
trimming, cutting at a zero crossing, zero-padding of short hits to 1 s, joining
short utterances of one speaker with 0.25 s pauses, peak normalisation to 0.9.
realsounds/ only mixes down, resamples where needed, trims and cuts.  See
``benchmarks/data/README.md`` for sources, licences and caveats.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import importlib.util
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]

# Small helpers are shared with the bundled-sample builder (data_samples/make_samples.py).
_spec = importlib.util.spec_from_file_location(
    "_make_samples", REPO / "data_samples" / "make_samples.py"
)
_ms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ms)
resample = _ms.resample
to_mono_float = _ms.to_mono_float
cut_at_zero_crossing = _ms.cut_at_zero_crossing
trim_silence = _ms.trim_silence
even_pick = _ms.even_pick
peak_normalise = _ms.peak_normalise
vlq = _ms._vlq

SPEAKER_SR = 16000
SOUND_SR = 22050
SPEAKER_DUR = (2.0, 6.0)
SOUND_DUR = (1.0, 4.0)
CLIPS = 16  # clips per class / speaker (at most)
MIN_CLIPS = 10  # a class or speaker with fewer is dropped (and --check fails on it)
MIN_UTTERANCES = 8  # a voice with fewer distinct utterances is skipped
GAP_S = 0.25  # pause between joined utterances
DEFAULT_OUT = Path("~/.cache/audiogmm/devcorpus").expanduser()
FIELDS = [
    "path", "group", "label", "source_package", "source_version",
    "source_item", "duration_s", "source_sr",
]  # fmt: skip

# ----------------------------------------------------------------------------- packages

PACKAGES = [
    # soundfonts (rendered with fluidsynth)
    "musescore-general-soundfont", "timgm6mb-soundfont", "fluid-soundfont-gs",
    # real recordings for sound classes
    "hydrogen-data", "gcompris-qt-data", "bucklespring-data", "hedgewars-data",
    "freeciv-data", "oxygen-sounds",
    # speech
    "klettres-data", "ktuberling-data", "asterisk-core-sounds-es-wav",
    "asterisk-core-sounds-fr-wav", "asterisk-core-sounds-it-wav",
]  # fmt: skip

SOUNDFONTS = {
    "ms": ("musescore-general-soundfont", "usr/share/sounds/sf3/MuseScore_General_Full.sf3"),
    "tim": ("timgm6mb-soundfont", "usr/share/sounds/sf2/TimGM6mb.sf2"),
    "gs": ("fluid-soundfont-gs", "usr/share/sounds/sf2/FluidR3_GS.sf2"),
    "csf": ("csound-soundfont", "usr/share/sounds/sf2/sf_GMbank.sf2"),
}

# packages of the realsounds/ group (see the realsounds section below)
REAL_PACKAGES = [
    # drum kits, hand drums, guitar strums (Hydrogen)
    "hydrogen-drumkits", "hydrogen-drumkits-effects", "hydrogen-data",
    # instrument recordings and soundfonts (rendered with fluidsynth)
    "lmms-common", "gcompris-qt-data", "musescore-general-soundfont", "timgm6mb-soundfont",
    "csound-soundfont",
    # birds and mammals; water
    "widelands-data", "scratch", "redeclipse-data",
]  # fmt: skip

# large packages that are unpacked only in part: package -> folders
EXTRACT_ONLY = {
    "widelands-data": ["./usr/share/games/widelands/data/sound", "./usr/share/doc"],
    "scratch": ["./usr/share/scratch/Media/Sounds", "./usr/share/doc"],
    "kajongg": ["./usr/share/kajongg/voices", "./usr/share/doc"],
    "codec2-examples": ["./usr/share/codec2/wav", "./usr/share/doc"],
    "redeclipse-data": ["./usr/share/games/redeclipse/data/sounds/ambience", "./usr/share/doc"],
}


def run(cmd: list[str], cwd: Path | None = None, stdin=None) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stdin=stdin)


def fetch_packages(build: Path, packages: list[str]) -> dict[str, str]:
    """``apt-get download`` + ``dpkg-deb -x`` (one tree per package); return versions.

    Packages listed in ``EXTRACT_ONLY`` are unpacked only in part (the folders named
    there), which saves time and disk for the large game data packages.
    """
    debs = build / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    versions = {}
    for pkg in packages:
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if not found:
            print(f"apt-get download {pkg}", flush=True)
            run(["apt-get", "download", pkg], cwd=debs)
            found = sorted(debs.glob(f"{pkg}_*.deb"))
        deb = found[-1]
        root = build / "root" / pkg
        stamp = root / ".extracted"
        only = EXTRACT_ONLY.get(pkg)
        want = deb.name + ("" if only is None else " " + " ".join(only))
        if not stamp.exists() or stamp.read_text() != want:
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            if only is None:
                run(["dpkg-deb", "-x", str(deb), str(root)])
            else:
                tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)],
                                       stdout=subprocess.PIPE)  # fmt: skip
                run(["tar", "-x", "-C", str(root), *only], stdin=tar.stdout)
                tar.stdout.close()
                if tar.wait() != 0:
                    sys.exit(f"dpkg-deb --fsys-tarfile {deb} failed")
            stamp.write_text(want)
        out = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
        )
        versions[pkg] = out.stdout.strip()
    if shutil.which("fluidsynth") is None:
        sys.exit("fluidsynth not found: run `apt-get install -y fluidsynth` first")
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "fluidsynth"],
                         capture_output=True, text=True)  # fmt: skip
    versions["fluidsynth"] = out.stdout.strip() or "unknown"
    return versions


def pkg_root(build: Path, pkg: str) -> Path:
    return build / "root" / pkg


# ----------------------------------------------------------------------------- audio io


def seed_of(label: str, salt: int = 0) -> int:
    return zlib.crc32(label.encode()) + 7919 * salt


def load(src, fmt: dict | None = None) -> tuple[np.ndarray, int]:
    """Read a file path or bytes into mono float64; ``fmt`` for raw formats (GSM)."""
    if isinstance(src, bytes):
        src = io.BytesIO(src)
    else:
        src = str(src)
    x, sr = sf.read(src, dtype="float64", **(fmt or {}))
    return to_mono_float(x), sr


GSM = {"format": "RAW", "subtype": "GSM610", "samplerate": 8000, "channels": 1}


def write_clip(path: Path, x: np.ndarray, sr: int) -> float:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = peak_normalise(x)
    sf.write(str(path), x.astype(np.float32), sr, subtype="PCM_16", format="FLAC")
    return len(x) / sr


def fit_sound(x: np.ndarray, sr: int = SOUND_SR) -> np.ndarray:
    """Trim silence, cut to <= 4 s at a zero crossing, zero-pad to >= 1 s."""
    x = trim_silence(x)
    x = cut_at_zero_crossing(x, int(SOUND_DUR[1] * sr))
    n_min = int(np.ceil(SOUND_DUR[0] * sr))
    if len(x) < n_min:
        x = np.concatenate([x, np.zeros(n_min - len(x))])
    return x


def windows(x: np.ndarray, sr: int, win: float = 3.0, min_len: float = 1.0) -> list:
    """Consecutive non-overlapping windows of a (trimmed) recording, quiet ones dropped."""
    x = trim_silence(x, -50.0)
    peak = np.max(np.abs(x))
    out = []
    n = int(win * sr)
    for start in range(0, len(x), n):
        seg = x[start : start + n]
        if len(seg) < min_len * sr or np.max(np.abs(seg)) < 0.1 * peak:
            continue
        out.append((start / sr, seg))
    return out


# ----------------------------------------------------------------------------- Qt .rcc


def rcc_files(path: Path) -> dict[str, bytes]:
    """Files stored in a Qt binary resource (``.rcc``, versions 1-3, zlib or stored)."""
    b = path.read_bytes()
    if b[:4] != b"qres":
        raise ValueError(f"{path} is not a Qt resource file")
    ver, tree, data, names = struct.unpack(">IIII", b[4:20])
    esz = 14 if ver == 1 else 22

    def name(off: int) -> str:
        (n,) = struct.unpack(">H", b[names + off : names + off + 2])
        return b[names + off + 6 : names + off + 6 + 2 * n].decode("utf-16-be")

    out: dict[str, bytes] = {}

    def walk(i: int, prefix: str) -> None:
        e = tree + i * esz
        noff, flags = struct.unpack(">IH", b[e : e + 6])
        nm = name(noff) if i else ""
        if flags & 2:  # directory
            count, first = struct.unpack(">II", b[e + 6 : e + 14])
            for c in range(count):
                walk(first + c, prefix + nm + "/")
            return
        (doff,) = struct.unpack(">I", b[e + 10 : e + 14])
        (size,) = struct.unpack(">I", b[data + doff : data + doff + 4])
        raw = b[data + doff + 4 : data + doff + 4 + size]
        if flags & 4:  # zstd: not needed for the audio here
            return
        if flags & 1:
            raw = zlib.decompress(raw[4:])
        out[prefix + nm] = raw

    walk(0, "")
    return out


# ----------------------------------------------------------------------------- MIDI


def write_midi_events(path: Path, events: list[tuple[float, int, bytes]]) -> None:
    """Type-0 MIDI file from (time s, priority, message) events; 960 ticks per s."""
    tps = 960
    evs = [(0, -1, bytes([0xFF, 0x51, 0x03]) + (500000).to_bytes(3, "big"))]
    evs += [(round(t * tps), p, m) for t, p, m in events]
    end = max(t for t, _, _ in evs) + tps
    evs.append((end, 99, bytes([0xFF, 0x2F, 0x00])))
    track, last = b"", 0
    for tick, _p, msg in sorted(evs):
        track += vlq(tick - last) + msg
        last = tick
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    path.write_bytes(header + b"MTrk" + struct.pack(">I", len(track)) + track)


# (class, kind, variants, extra):
#   melodic: variants = [(soundfont, bank, program)], extra = (lowest key, highest key)
#   drums:   variants = [(soundfont, kit)],            extra = GM percussion keys
#   sfx:     variants = [(soundfont, bank, program)],  extra = (lowest key, highest key)
KITS = [0, 8, 16, 24, 25, 32, 40, 48]  # Standard Room Power Electronic TR-808 Jazz Brush Orch.
DRUM_VARIANTS = [(sf_, k) for k in KITS for sf_ in ("ms", "tim")]


def _mel(*programs: int) -> list:
    return [(s, 0, p) for p in programs for s in ("ms", "tim")]


RENDERED = {
    # instrument families (three-note phrases)
    "acoustic_guitar": ("melodic", _mel(24, 25), (40, 76)),
    "electric_guitar": ("melodic", _mel(26, 27), (40, 79)),
    "electric_bass": ("melodic", _mel(33, 34), (28, 55)),
    "cello": ("melodic", _mel(42), (36, 69)),
    "trumpet": ("melodic", _mel(56), (55, 82)),
    "trombone": ("melodic", _mel(57), (40, 70)),
    "clarinet": ("melodic", _mel(71), (50, 84)),
    "saxophone": ("melodic", _mel(65, 66), (49, 80)),
    "oboe": ("melodic", _mel(68), (58, 88)),
    "church_organ": ("melodic", _mel(19), (36, 84)),
    "harp": ("melodic", _mel(46), (36, 91)),
    "marimba": ("melodic", _mel(12), (45, 84)),
    "accordion": ("melodic", _mel(21), (48, 81)),
    "sitar": ("melodic", _mel(104), (48, 77)),
    "steel_drum": ("melodic", _mel(114), (52, 84)),
    "choir": ("melodic", _mel(52), (48, 79)),
    "banjo": ("melodic", _mel(105), (48, 79)),
    "timpani": ("melodic", _mel(47), (40, 57)),
    # GM percussion pieces (not the kit pieces of data_samples/)
    "conga": ("drums", DRUM_VARIANTS, (62, 63, 64)),
    "bongo": ("drums", DRUM_VARIANTS, (60, 61)),
    "cowbell": ("drums", DRUM_VARIANTS, (56,)),
    "tambourine": ("drums", DRUM_VARIANTS, (54,)),
    "hand_clap": ("drums", DRUM_VARIANTS, (39,)),
    "side_stick": ("drums", DRUM_VARIANTS, (37,)),
    "woodblock_claves": ("drums", DRUM_VARIANTS, (75, 76, 77)),
    "shaker": ("drums", DRUM_VARIANTS, (69, 70, 82)),
    "triangle": ("drums", DRUM_VARIANTS, (80, 81)),
    "timbale": ("drums", DRUM_VARIANTS, (65, 66)),
    "agogo": ("drums", DRUM_VARIANTS, (67, 68)),
    # GM / GS sound effects
    "bird_tweet": ("sfx", [("ms", 0, 123), ("tim", 0, 123), ("gs", 3, 123)], (55, 72)),
    "seashore": ("sfx", [("ms", 0, 122), ("tim", 0, 122)], (52, 72)),
    "telephone_ring": ("sfx", [("ms", 0, 124), ("tim", 0, 124), ("gs", 1, 124)], (55, 72)),
    "helicopter": ("sfx", [("ms", 0, 125), ("tim", 0, 125)], (52, 72)),
    "applause": ("sfx", [("ms", 0, 126), ("tim", 0, 126)], (52, 72)),
    "gunshot": ("sfx", [("ms", 0, 127), ("tim", 0, 127), ("gs", 1, 127)], (48, 72)),
    "explosion": ("sfx", [("gs", 3, 127)], (40, 60)),
}

# real recordings added to a class before the rendered clips:
# class -> list of (package, kind, item); kind "file" (path in the package, one hit /
# one clip), "rcc" ("<rcc file>:<resource path>", cut into <= 3 s windows).
HYD = "usr/share/hydrogen/data/drumkits"
GC = "usr/share/gcompris-qt/rcc"
GC_INS = "instruments.rcc:/gcompris/src/activities/instruments/resource"
HW = "usr/share/games/hedgewars/Data/Sounds"
FC = "usr/share/games/freeciv/stdsounds"


def _gc_ins(name: str, n: int = 2) -> list:
    return [("gcompris-qt-data", f"rcc{n}", f"{GC_INS}/{name}.ogg")]


REAL = {
    "acoustic_guitar": _gc_ins("guitar"),
    "electric_guitar": _gc_ins("electric_guitar"),
    "cello": _gc_ins("cello"),
    "trumpet": _gc_ins("trumpet"),
    "trombone": _gc_ins("trombone"),
    "clarinet": _gc_ins("clarinet"),
    "saxophone": _gc_ins("saxophone"),
    "church_organ": _gc_ins("organ"),
    "harp": _gc_ins("harp"),
    "accordion": _gc_ins("accordion"),
    "banjo": _gc_ins("banjo"),
    "timpani": _gc_ins("timpani"),
    "bongo": _gc_ins("bongo"),
    "tambourine": _gc_ins("tambourine"),
    "triangle": _gc_ins("triangle"),
    "shaker": _gc_ins("maracas"),
    "cowbell": [("hydrogen-data", "file", f"{HYD}/GMRockKit/Cowbell-{v}.wav")
                for v in ("Softest", "Med", "Hardest")]
    + [("hydrogen-data", "file", f"{HYD}/TR808EmulationKit/808_Cowbell.flac")],
    "hand_clap": [("hydrogen-data", "file", f"{HYD}/GMRockKit/HandClap.wav"),
                  ("hydrogen-data", "file", f"{HYD}/TR808EmulationKit/808_Clap.flac")],
    "side_stick": [("hydrogen-data", "file", f"{HYD}/GMRockKit/SideStick-{v}.wav")
                   for v in ("Softest", "Med", "Hardest")],
    "woodblock_claves": [("hydrogen-data", "file", f"{HYD}/TR808EmulationKit/808_Clave.flac")],
    "conga": [("hydrogen-data", "file", f"{HYD}/TR808EmulationKit/808_Conga.flac")],
    "applause": [("gcompris-qt-data", "rcc1",
                  "memory-sound.rcc:/gcompris/src/activities/memory-sound/resource/"
                  "LRApplauses_1_LA_cut.ogg")],
    "gunshot": [("hedgewars-data", "file", f"{HW}/{n}.ogg")
                for n in ("shotgunfire", "gun", "sniperreload")]
    + [("freeciv-data", "file", f"{FC}/{n}.ogg") for n in ("MgBar1", "MgHeavy")],
    "explosion": [("hedgewars-data", "file", f"{HW}/{n}.ogg")
                  for n in ("explosion", "grenadeimpact", "mineimpact", "airmine_impact",
                            "melonimpact", "graveimpact", "mortar", "firepunch_hit")]
    + [("freeciv-data", "file", f"{FC}/{n}.ogg")
       for n in ("LrgExpl", "SmlExpl", "LrgCan", "MedCan", "Mortar")],
}  # fmt: skip


def _rng(label: str, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed_of(label, salt))


def clip_notes(cls: str, kind: str, extra, i: int) -> list[tuple[int, int, float, float]]:
    """(key, velocity, onset s, length s) of clip ``i`` of a rendered class."""
    rng = _rng(cls, i)
    if kind == "melodic":
        lo, hi = extra
        keys = rng.integers(lo, hi + 1, 3)
        notes, t = [], 0.0
        for k in keys:
            dur = round(float(rng.uniform(0.55, 0.95)), 2)
            notes.append((int(k), int(rng.integers(55, 128)), round(t, 2), dur))
            t += dur
        return notes
    if kind == "drums":
        notes, t = [], 0.0
        for _ in range(int(rng.integers(2, 5))):
            key = int(extra[int(rng.integers(len(extra)))])
            notes.append((key, int(rng.integers(40, 128)), round(t, 2), 0.2))
            t += float(rng.uniform(0.2, 0.55))
        return notes
    lo, hi = extra  # sfx: one held note
    key = int(rng.integers(lo, hi + 1))
    return [(key, int(rng.integers(70, 128)), 0.0, round(float(rng.uniform(1.5, 3.0)), 2))]


SLOT_S = 6.0  # seconds per clip on the render timeline (notes <= 3 s, then release)


def render_all(build: Path, plan: dict[str, list[dict]], sr: int = SOUND_SR,
               gain: float = 0.5) -> dict[tuple[str, int], np.ndarray]:  # fmt: skip
    """Render every planned clip; one fluidsynth run per soundfont.

    ``plan[sf_key]`` lists dicts with cls, idx, kind, bank, program/kit, notes.  Each
    clip gets its own ``SLOT_S`` slot; all sound is cut at the end of the slot.
    Rendered at ``sr`` Hz with fluidsynth gain ``gain``.
    """
    out = {}
    tmp = build / "render"
    tmp.mkdir(parents=True, exist_ok=True)
    for sf_key, clips in sorted(plan.items()):
        pkg, rel = SOUNDFONTS[sf_key]
        events: list[tuple[float, int, bytes]] = []
        for s, c in enumerate(clips):
            t0 = s * SLOT_S
            ch = 9 if c["kind"] == "drums" else 0
            if ch == 0:
                events.append((t0, 0, bytes([0xB0, 0, c["bank"]])))  # bank select (MSB)
                events.append((t0, 0, bytes([0xB0, 32, 0])))
            events.append((t0, 1, bytes([0xC0 | ch, c["program"]])))
            for key, vel, on, length in c["notes"]:
                events.append((t0 + 0.05 + on, 3, bytes([0x90 | ch, key, vel])))
                events.append((t0 + 0.05 + on + length, 2, bytes([0x80 | ch, key, 0])))
            end = t0 + SLOT_S - 0.05
            events.append((end, 4, bytes([0xB0 | ch, 120, 0])))  # all sound off
            events.append((end, 4, bytes([0xB0 | ch, 121, 0])))  # reset controllers
        mid, wav = tmp / f"{sf_key}.mid", tmp / f"{sf_key}.wav"
        write_midi_events(mid, events)
        print(f"  fluidsynth {Path(rel).name}: {len(clips)} clips", flush=True)
        run(
            ["fluidsynth", "-q", "-ni", "-R", "0", "-C", "0",
             "-g", str(gain), "-O", "float", "-T", "wav", "-r", str(sr),
             "-F", str(wav), str(pkg_root(build, pkg) / rel), str(mid)]
        )  # fmt: skip
        x, got = load(wav)
        assert got == sr
        n = int(SLOT_S * sr)
        for s, c in enumerate(clips):
            out[(c["cls"], c["idx"])] = x[s * n : (s + 1) * n - int(0.1 * sr)]
        wav.unlink()
    return out


def real_items(build: Path, pkg: str, kind: str, item: str) -> list[tuple[str, np.ndarray, int]]:
    """(source_item, audio, native sr) clips from one real recording."""
    if kind == "file":
        x, sr = load(pkg_root(build, pkg) / item)
        return [(Path(item).name, x, sr)]
    rcc, res = item.split(":", 1)
    x, sr = load(rcc_files(pkg_root(build, pkg) / GC / rcc)[res])
    n = int(kind[3:])  # "rccN": at most N windows
    wins = windows(x, sr)[:n]
    return [(f"{rcc}:{Path(res).name}@{t0:.1f}s", seg, sr) for t0, seg in wins]


def make_sounds(build: Path, out: Path, versions: dict, rows: list[dict]) -> None:
    plan: dict[str, list[dict]] = {}
    per_class: dict[str, list] = {}
    for cls, (kind, variants, extra) in RENDERED.items():
        items = []
        for pkg, k, item in REAL.get(cls, []):
            for name, x, sr in real_items(build, pkg, k, item):
                items.append(("real", pkg, name, x, sr))
        n_render = max(CLIPS - len(items), 0)
        for i in range(n_render):
            var = variants[i % len(variants)]
            sf_key = var[0]
            c = {"cls": cls, "idx": i, "kind": kind, "notes": clip_notes(cls, kind, extra, i)}
            if kind == "drums":
                c.update(bank=128, program=var[1])
            else:
                c.update(bank=var[1], program=var[2])
            plan.setdefault(sf_key, []).append(c)
            items.append(("render", sf_key, c))
        per_class[cls] = items
    rendered = render_all(build, plan)
    # classes made only of real recordings
    per_class.update(real_only_classes(build))
    for cls in sorted(per_class):
        n = 0
        for it in per_class[cls]:
            if it[0] == "real":
                _, pkg, name, x, sr = it
                y = fit_sound(resample(x, sr, SOUND_SR))
                item, src_sr = name, str(sr)
            else:
                _, sf_key, c = it
                pkg = SOUNDFONTS[sf_key][0]
                y = fit_sound(rendered[(cls, c["idx"])])
                kind_s = f"kit {c['program']}" if c["kind"] == "drums" else (
                    f"bank {c['bank']} program {c['program']}")  # fmt: skip
                item = (
                    f"{Path(SOUNDFONTS[sf_key][1]).name} {kind_s}; (key,vel,onset,len): "
                    + " ".join(f"({k},{v},{o:.2f},{d:.2f})" for k, v, o, d in c["notes"])
                )
                src_sr = f"rendered@{SOUND_SR}"
            if np.max(np.abs(y)) < 1e-4:
                print(f"    skip silent {cls} {item[:60]}")
                continue
            path = out / "sounds" / cls / f"{cls}_{n:02d}.flac"
            dur = write_clip(path, y, SOUND_SR)
            rows.append(row(out, path, "sounds", cls, pkg, versions[pkg], item, dur, src_sr))
            n += 1
        print(f"  {cls}: {n} clips", flush=True)


def real_only_classes(build: Path) -> dict[str, list]:
    """keyboard_typing, animal_call, ui_alert: built only from recordings."""
    classes: dict[str, list] = {}
    # bucklespring: Model M key press (-0) / release (-1) recordings, 5 keys per clip
    wav = pkg_root(build, "bucklespring-data") / "usr/share/buckle/wav"
    keys = sorted({f.name.split("-")[0] for f in wav.glob("*-0.wav")}
                  & {f.name.split("-")[0] for f in wav.glob("*-1.wav")})  # fmt: skip
    rng = _rng("keyboard_typing")
    keys = [keys[i] for i in rng.permutation(len(keys))]
    items = []
    for c in range(min(CLIPS, len(keys) // 5)):
        chunk = keys[5 * c : 5 * c + 5]
        buf = np.zeros(int(3.0 * 44100))
        t, names = 0.02, []
        for k in chunk:
            for suffix, dt in (("0", 0.0), ("1", float(rng.uniform(0.08, 0.16)))):
                x, sr = load(wav / f"{k}-{suffix}.wav")
                i0 = int((t + dt) * sr)
                seg = x[: len(buf) - i0]
                buf[i0 : i0 + len(seg)] += seg
            names.append(k)
            t += float(rng.uniform(0.2, 0.45))
        items.append(("real", "bucklespring-data", "keys " + " ".join(names), buf, 44100))
    classes["keyboard_typing"] = items
    # GCompris farm animals (+ two dog barks), cut into <= 3 s windows
    items = []
    animals = (
        "explore_farm_animals.rcc:/gcompris/src/activities/explore_farm_animals/resource/animals"
    )
    for a in ("cat", "chickens", "cow", "dog", "duck", "horse", "owl", "pig", "sheep"):
        for it in real_items(build, "gcompris-qt-data", "rcc4", f"{animals}/{a}.ogg"):
            items.append(("real", "gcompris-qt-data", *it))
    mem = "memory-sound.rcc:/gcompris/src/activities/memory-sound/resource"
    for b in ("LRBark_1_LA_cut", "LRBark_3_LA_cut"):
        for it in real_items(build, "gcompris-qt-data", "rcc1", f"{mem}/{b}.ogg"):
            items.append(("real", "gcompris-qt-data", *it))
    classes["animal_call"] = items[:CLIPS]
    # Oxygen desktop notification sounds, 1-4.2 s
    snd = pkg_root(build, "oxygen-sounds") / "usr/share/sounds"
    cands = [f for f in sorted(snd.glob("Oxygen-*.ogg"))
             if 1.0 <= sf.info(str(f)).duration <= 4.2]  # fmt: skip
    items = []
    for f in even_pick(cands, CLIPS):
        x, sr = load(f)
        items.append(("real", "oxygen-sounds", f.name, x, sr))
    classes["ui_alert"] = items
    return classes


# ----------------------------------------------------------------------------- speakers

HW_VOICES = "usr/share/games/hedgewars/Data/Sounds/voices"
# vocalisations that are not words (grunts, coughs, jumps, laughs)
HW_NONWORD = re.compile(r"^(ooff|ow\d|jump|laugh|poison|hmm|yawn|snore|gasp|nooo|uh-oh|oops)",
                        re.I)  # fmt: skip


def speaker_sources(build: Path) -> dict[str, tuple[str, list, dict | None]]:
    """speaker -> (package, sorted utterance files, raw format or None)."""
    out = {}
    hw = pkg_root(build, "hedgewars-data") / HW_VOICES
    for d in sorted(p for p in hw.iterdir() if p.is_dir()):
        if d.name == "Robot":  # vocoded, not natural speech
            continue
        files = [f for f in sorted(d.glob("*.ogg")) if not HW_NONWORD.match(f.stem)]
        out[f"hw_{d.name.lower()}"] = ("hedgewars-data", files, None)
    kl = pkg_root(build, "klettres-data") / "usr/share/klettres"
    for d in sorted(p for p in kl.iterdir() if p.is_dir() and p.name not in ("icons", "pics")):
        files = sorted(d.glob("alpha/*.ogg")) + sorted(d.glob("syllab/*.ogg"))
        out[f"klettres_{d.name.lower()}"] = ("klettres-data", files, None)
    kt = pkg_root(build, "ktuberling-data") / "usr/share/ktuberling/sounds"
    for d in sorted(p for p in kt.iterdir() if p.is_dir()):
        files = sorted(f for f in d.iterdir() if f.suffix in (".ogg", ".wav"))
        if not files:
            continue
        # several languages mix recordings at different rates (likely different
        # sessions or people): keep only the most common native rate
        rates = [sf.info(str(f)).samplerate for f in files]
        common = max(sorted(set(rates)), key=rates.count)
        files = [f for f, r in zip(files, rates) if r == common]
        label = "ktuberling_" + re.sub(r"[^a-z0-9]+", "_", d.name.lower())
        out[label] = ("ktuberling-data", files, None)
    ast = pkg_root(build, "asterisk-core-sounds-es-wav") / "usr/share/asterisk/sounds"
    out["ast_es_mx"] = ("asterisk-core-sounds-es-wav",
                        sorted((ast / "es_MX_f_Allison").glob("*.wav")), None)  # fmt: skip
    for pkg, voice in (("asterisk-core-sounds-fr-wav", "fr_CA_f_June"),
                       ("asterisk-core-sounds-it-wav", "it_IT_m_Carlo")):  # fmt: skip
        ast = pkg_root(build, pkg) / "usr/share/asterisk/sounds" / voice
        out[f"ast_{voice[:5].lower()}"] = (pkg, sorted(ast.glob("*.wav")), None)
    # serbian variants are the same recordings under four locale names
    for dup in ("ktuberling_sr_ijekavian", "ktuberling_sr_ijekavianlatin",
                "ktuberling_sr_latin"):  # fmt: skip
        out.pop(dup, None)
    return out


def speech_clips(label: str, files: list, fmt: dict | None, gap_s: float = GAP_S,
                 target=None, n_max: int = CLIPS):  # fmt: skip
    """Yield (audio at 16 kHz, [file names], {native rates}) clips of up to 6 s.

    Utterances (files) are taken in a fixed shuffled order, trimmed, and joined with
    ``gap_s`` pauses until a clip is at least ``target`` s long (2.5 s, or drawn per
    clip when ``target`` is a (low, high) range); no utterance is used twice.
    Utterances already long enough usually make a clip on their own.
    """
    order = _rng(label).permutation(len(files))
    draw = None if target is None else _rng(label, 1)
    want = 2.5 if draw is None else float(draw.uniform(*target))
    buf: list[np.ndarray] = []
    names: list[str] = []
    rates: set[int] = set()
    gap = np.zeros(int(gap_s * SPEAKER_SR))
    made = 0
    for i in order:
        if made == n_max:
            return
        f = files[i]
        try:
            x, sr = load(f, fmt)
        except Exception as exc:  # noqa: BLE001 - skip undecodable files, keep going
            print(f"    {label}: cannot read {f.name}: {exc}")
            continue
        if len(x) == 0 or np.max(np.abs(x)) < 1e-3:
            continue
        y = trim_silence(resample(x, sr, SPEAKER_SR), -45.0)
        d = len(y) / SPEAKER_SR
        if d < 0.25 or d > SPEAKER_DUR[1] - 0.05:
            continue
        cur = sum(len(b) for b in buf) / SPEAKER_SR
        if buf and cur + gap_s + d > SPEAKER_DUR[1] - 0.05:
            buf, names, rates = [], [], set()  # would not fit: start afresh
            cur = 0.0
        if buf and len(gap):
            buf.append(gap)
        buf.append(y)
        names.append(Path(f).name)
        rates.add(sr)
        if sum(len(b) for b in buf) / SPEAKER_SR >= want:
            yield np.concatenate(buf), names, rates
            made += 1
            buf, names, rates = [], [], set()
            if draw is not None:
                want = float(draw.uniform(*target))


def make_speakers(build: Path, out: Path, versions: dict, rows: list[dict], log: dict):
    for label, (pkg, files, fmt) in sorted(speaker_sources(build).items()):
        if len(files) < MIN_UTTERANCES:
            log[label] = f"skipped: only {len(files)} utterances"
            print(f"  {label}: skipped ({len(files)} utterances)")
            continue
        clips = list(speech_clips(label, files, fmt))
        if len(clips) < MIN_CLIPS:
            log[label] = f"skipped: only {len(clips)} clips of 2-6 s from {len(files)} files"
            print(f"  {label}: skipped ({len(clips)} clips)")
            continue
        for n, (y, names, rates) in enumerate(clips):
            path = out / "speakers" / label / f"{label}_{n:02d}.flac"
            dur = write_clip(path, y, SPEAKER_SR)
            src_sr = "+".join(str(r) for r in sorted(rates))
            rows.append(row(out, path, "speakers", label, pkg, versions[pkg],
                            " + ".join(names), dur, src_sr))  # fmt: skip
        print(f"  {label}: {len(clips)} clips from {len(files)} utterance files", flush=True)


# ----------------------------------------------------------------------------- hardspeakers
#
# A harder speaker set: more speakers, short clips (1.5-6 s, utterances joined without
# pauses), at most 18 clips each (8 for training, the rest for testing), and where the
# source allows several recording chains or languages per speaker (the Asterisk voices
# come as 8 kHz PCM and as GSM 6.10; Allison Smith reads English and Spanish).

HARD_GROUP = "hardspeakers"
HARD_DUR = (1.5, 6.0)
HARD_TARGET = (1.5, 2.5)  # a clip joins utterances until it is this long (drawn per clip)
HARD_CLIPS = 18  # per speaker, at most: 8 training + 10 test clips
HARD_MIN_CLIPS = 11  # 8 training + at least 3 test clips, else the speaker is dropped
HARD_MIN_LABELS = 40
HARD_KLETTRES = ("klettres_en", "klettres_en_gb")  # the English KLettres voices only
KAJONGG_VOICES = "usr/share/kajongg/voices"
AST_SOUNDS = "usr/share/asterisk/sounds"
# speaker -> [(package, voice folder)]: one recording chain (codec) or language each
AST_HARD = {
    "ast_allison": [(f"asterisk-core-sounds-{lang}-{codec}", voice)
                    for lang, voice in (("en", "en_US_f_Allison"), ("es", "es_MX_f_Allison"))
                    for codec in ("wav", "gsm")],
    "ast_june": [(f"asterisk-core-sounds-fr-{c}", "fr_CA_f_June") for c in ("wav", "gsm")],
    "ast_carlo": [(f"asterisk-core-sounds-it-{c}", "it_IT_m_Carlo") for c in ("wav", "gsm")],
    "ast_ivrvoiceru": [(f"asterisk-core-sounds-ru-{c}", "ru_RU_f_IvrvoiceRU")
                       for c in ("wav", "gsm")],
    "ast_menardi": [(f"asterisk-prompt-it-menardi-{c}", "it_IT_f_Menardi")
                    for c in ("wav", "gsm")],
}  # fmt: skip
# Codec 2 test recordings (8 kHz; amateur radio operators): speaker -> long recording
CODEC2 = {"codec2_david": "david4.wav", "codec2_ve9qrp": "ve9qrp.wav",
          "codec2_vk2tpm": "vk2tpm_004.wav"}  # fmt: skip
HARD_PACKAGES = [
    "hedgewars-data",
    "kajongg",
    "ktuberling-data",
    "klettres-data",
    "codec2-examples",
] + sorted({pkg for srcs in AST_HARD.values() for pkg, _ in srcs})


def split_recording(src: Path, dst: Path) -> list[Path]:
    """Cut a long recording at its pauses into utterance files (16-bit WAV, native rate).

    A pause is at least 0.12 s of 20 ms frames more than 30 dB below the loudest frame
    (or less than 6 dB above the quietest tenth); the cut is in its middle.  Pieces
    longer than 2.5 s are cut again at zero crossings, pieces under 0.3 s are dropped.
    Written once into ``dst``.
    """
    stamp = dst / ".complete"
    if not stamp.exists():
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        x, sr = load(src)
        hop = int(0.01 * sr)
        frames = [x[i : i + 2 * hop] for i in range(0, max(len(x) - 2 * hop, 1), hop)]
        db = 20 * np.log10(np.array([np.sqrt(np.mean(f**2)) for f in frames]) + 1e-12)
        # noisy radio recordings never fall 30 dB: then 6 dB above their noise floor
        quiet = np.append(db < max(db.max() - 30.0, np.percentile(db, 10) + 6.0), False)
        cuts, run0 = [0], None
        for i, q in enumerate(quiet):
            if q and run0 is None:
                run0 = i
            elif not q and run0 is not None:
                if i - run0 >= 12:
                    cuts.append((run0 + i) // 2 * hop)
                run0 = None
        cuts.append(len(x))
        k = 0
        for a, b in zip(cuts[:-1], cuts[1:]):
            while b - a >= 0.3 * sr:  # longer pieces in turns of at most 2.5 s
                piece = cut_at_zero_crossing(x[a:b], int(2.5 * sr))
                sf.write(str(dst / f"{src.stem}_{k:03d}.wav"), piece, sr, subtype="PCM_16")
                a, k = a + len(piece), k + 1
        stamp.write_text("")
    return sorted(dst.glob("*.wav"))


def hard_sources(build: Path) -> dict[str, list[tuple[str, str, list, dict | None]]]:
    """speaker -> [(package, sub-source, sorted utterance files, raw format or None)].

    Hedgewars packs (not ``Robot``, vocoded) and KTuberling languages as in
    ``speakers/``; the Kajongg voices (English and German); the Asterisk voices, whose
    prompts are dealt out over their packages (one codec or language each) so that no
    prompt is used twice.
    """
    spk = speaker_sources(build)
    out = {k: [(pkg, "", files, fmt)] for k, (pkg, files, fmt) in spk.items()
           if k.startswith(("hw_", "ktuberling_")) or k in HARD_KLETTRES}  # fmt: skip
    kj = pkg_root(build, "kajongg") / KAJONGG_VOICES
    for d in sorted(p for p in kj.glob("*") if p.is_dir()):
        for v in [d] if d.name != "de" else sorted(p for p in d.iterdir() if p.is_dir()):
            lang = "de" if v.parent.name == "de" else "en"
            out[f"kajongg_{lang}_{v.name}"] = [("kajongg", "", sorted(v.glob("*.ogg")), None)]
    c2 = pkg_root(build, "codec2-examples") / "usr/share/codec2/wav"
    for label, name in CODEC2.items():
        files = split_recording(c2 / name, build / "split" / Path(name).stem)
        out[label] = [("codec2-examples", "", files, None)]
    for label, srcs in AST_HARD.items():
        lists = []
        for pkg, voice in srcs:
            gsm = pkg.endswith("-gsm")
            files = sorted((pkg_root(build, pkg) / AST_SOUNDS / voice).glob(
                "*.gsm" if gsm else "*.wav"))  # fmt: skip
            lists.append((pkg, voice, files, GSM if gsm else None))
        # deal each prompt (by voice folder and name) to one package, in turn
        dealt: list[list] = [[] for _ in lists]
        for j, stem in enumerate(sorted({(v, f.stem) for _, v, fs, _ in lists for f in fs})):
            own = [k for k, (_, v, fs, _) in enumerate(lists)
                   if v == stem[0] and any(f.stem == stem[1] for f in fs)]  # fmt: skip
            k = own[j % len(own)]
            dealt[k].append(next(f for f in lists[k][2] if f.stem == stem[1]))
        out[label] = [(pkg, f"{pkg}:{voice}", sorted(d), fmt)
                      for (pkg, voice, _, fmt), d in zip(lists, dealt)]  # fmt: skip
    return out


def make_hardspeakers(build: Path, out: Path, versions: dict, rows: list[dict], log: dict):
    for label, srcs in sorted(hard_sources(build).items()):
        per_src = []
        for pkg, sub, files, fmt in srcs:
            seed = f"{HARD_GROUP}:{label}:{sub}"
            per_src.append([(pkg, *c) for c in speech_clips(seed, files, fmt, gap_s=0.0,
                                                            target=HARD_TARGET,
                                                            n_max=HARD_CLIPS)])  # fmt: skip
        clips = interleave(per_src)[:HARD_CLIPS]
        if len(clips) < HARD_MIN_CLIPS:
            log[f"{HARD_GROUP}/{label}"] = f"skipped: only {len(clips)} clips"
            print(f"  {label}: skipped ({len(clips)} clips)")
            continue
        for n, (pkg, y, names, rates) in enumerate(clips):
            path = out / HARD_GROUP / label / f"{label}_{n:02d}.flac"
            dur = write_clip(path, y, SPEAKER_SR)
            src_sr = "+".join(str(r) for r in sorted(rates))
            rows.append(row(out, path, HARD_GROUP, label, pkg, versions[pkg],
                            " + ".join(names), dur, src_sr))  # fmt: skip
        pkgs = sorted({c[0] for c in clips})
        print(f"  {label}: {len(clips)} clips from {', '.join(pkgs)}", flush=True)


# ----------------------------------------------------------------------------- realsounds
#
# A harder sound set of real recordings that keep their own levels: no peak
# normalisation and no padding.  Only leading/trailing digital silence is trimmed and
# long recordings are cut into pieces.  Every class mixes several sources (drum kits,
# recording sets, soundfonts, animals), interleaved over the clip numbers.

REAL_GROUP = "realsounds"
REAL_SR = (22050, 48000)  # native rates in this range are kept ...
REAL_SR_OTHER = 44100  # ... others are resampled to this rate
REAL_DUR = (0.25, 5.0)
REAL_CLIPS = 22  # clips per class (at most)
REAL_MIN_CLIPS = 16  # a class with fewer is dropped (and --check fails on it)
REAL_MIN_LABELS = 18
REAL_TRIM_DB = -60.0  # leading/trailing samples this far below the clip peak are cut
REAL_PIECE_S = (1.5, 4.0)  # piece lengths for recordings longer than REAL_DUR[1]
REAL_MAX_PIECES = 3  # pieces per recording (at most)
REAL_MIN_PEAK = 1e-3  # -60 dBFS: a quieter clip counts as silent
REAL_RENDER_SR = 44100
REAL_RENDER_GAIN = 1.0

H2 = "usr/share/hydrogen/data/drumkits"
# Hydrogen kits used (acoustic kits and hand percussion).  Not used: the electronic
# kits (ElectricEmpireKit, HardElectro1, rumpf_kit_z01_h2, TR808EmulationKit), and
# "The Black Pearl 1.0" = hydrogen-data's GMRockKit (used by sounds/), of which only
# the 24" ride ("Ride 2") is not a copy.
H2_KITS = {
    "hydrogen-drumkits": ["Audiophob", "BJA_Pacific", "ColomboAcousticDrumkit",
                          "ForzeeStereo", "Gimme A Hand 1.0", "Millo-Drums_v.1",
                          "Millo_MultiLayered2", "Millo_MultiLayered3", "VariBreaks",
                          "circAfrique v4"],
    "hydrogen-data": ["GMRockKit"],
}  # fmt: skip
# only these instruments of a kit (GMRockKit: the rest is The Black Pearl, see above);
# (kit, instrument) slots skipped because they hold something else than their name
# says (Audiophob fills GM slots with unrelated freesound samples, e.g. a tom as Kick)
H2_ONLY = {"GMRockKit": {"Ride 2"}}
H2_SKIP = {("Audiophob", n) for n in ("Kick", "Stick", "Snare Jazz", "Pedal HH", "Tom Low",
                                      "Tom Mid")}  # fmt: skip
# class of a kit layer from "<instrument name> <file name>" (lower case); first match
# wins, None = not used
H2_RULES = [
    (None, r"empty|choke|roll|swish|hat free|crash/ride \(|whistle|"
           r"(sangban|dununba|kenkeni)\d? bell"),
    ("hand_drum", r"djembe|sangban|dununba|kenkeni|cajon|bongo"),
    ("shaker", r"maraca|tambourine|shaker"),
    (None, r"clap|cowbell|stick|rim click|maraca|clave|woodblock|waterglass|finger|"
           r"tambourine|agogo|conga|shaker"),
    ("ride", r"ride|bell|cup|\bbow\b"),
    ("crash", r"crash|splash|china"),
    ("hihat_open", r"(hat|hh).*(open|semi|\bop\b)|hhopen|\bho_"),
    ("hihat_closed", r"hat|hh"),
    ("tom_low", r"tom.*(low|floor)|floor ?tom|floortom|\bft_"),
    ("tom_high", r"tom"),
    ("snare", r"snare"),
    ("kick", r"kick|bass ?drum|bassdrum"),
]  # fmt: skip

LM = "usr/share/lmms/samples"
WL = "usr/share/games/widelands/data/sound"
SCR = "usr/share/scratch/Media/Sounds"
RE = "usr/share/games/redeclipse/data/sounds/ambience"
GC_RES = "/gcompris/src/activities/{0}/resource/{1}"
# (also used by sounds/ animal_call, cut differently there; needed to fill mammal)
GC_FARM = "explore_farm_animals.rcc:explore_farm_animals/animals"

# class -> [(package, kind, path or glob, sub-source)]; kind "hit" (one clip per file,
# at most 5 s), "rec" (a recording: up to REAL_MAX_PIECES pieces of 1.5-4 s), "rcc"
# (a GCompris resource "<rcc>:<activity>/<file>", cut like "rec").  The sub-source
# (kit, recording set, species) is what the clips of a package rotate over; "*" means
# the file name (without a trailing _NN).
REAL_FILES: dict[str, list[tuple[str, str, str, str]]] = {
    "hihat_closed": [("lmms-common", "hit", f"{LM}/drums/hihat_foot_pedal01.ogg", "lmms")],
    "hihat_open": [("lmms-common", "hit", f"{LM}/drums/hihat_opened0{i}.ogg", "lmms")
                   for i in (1, 2, 3)],
    "crash": [("lmms-common", "hit", f"{LM}/drums/crash0{i}.ogg", "lmms") for i in (1, 2)]
    + [("scratch", "hit", f"{SCR}/Percussion/CymbalCrash.wav", "scratch")],
    "ride": [("lmms-common", "hit", f"{LM}/drums/ride01.ogg", "lmms"),
             ("scratch", "hit", f"{SCR}/Percussion/RideCymbal.wav", "scratch")],
    "piano": [("gcompris-qt-data", "rcc", "instruments.rcc:instruments/piano.ogg", "*"),
              ("lmms-common", "rec", f"{LM}/instruments/piano0?.ogg", "*")],
    "violin": [("gcompris-qt-data", "rcc", "instruments.rcc:instruments/violin.ogg", "*"),
               ("lmms-common", "rec", f"{LM}/instruments/violin_*.ogg", "*")],
    "flute": [("gcompris-qt-data", "rcc",
               "instruments.rcc:instruments/flute_traversiere.ogg", "*"),
              ("lmms-common", "rec", f"{LM}/instruments/flute01.ogg", "*")],
    "brass": [("scratch", "rec", f"{SCR}/Instruments/Trumpet{i}.wav", "*") for i in (1, 2)]
    + [("lmms-common", "rec", f"{LM}/{n}.ogg", "*")
       for n in ("instruments/trumpet01", "latin/latin_brass01")]
    + [("gcompris-qt-data", "rcc", f"instruments.rcc:instruments/{n}.ogg", "*")
       for n in ("horn", "tuba")],
    "acoustic_guitar": [
        ("hydrogen-drumkits-effects", "hit", f"{H2}/belofilms_GuitarStrums/*.flac",
         "belofilms strums"),
        ("lmms-common", "rec", f"{LM}/instruments/steel_guitar01.ogg", "*"),
        ("lmms-common", "rec", f"{LM}/latin/latin_guitar0?.ogg", "*"),
        ("scratch", "rec", f"{SCR}/Instruments/GuitarStrum.wav", "*"),
        ("gcompris-qt-data", "rcc", "memory-sound.rcc:memory-sound/guitar_*.ogg", "*"),
    ],
    "songbird": [("widelands-data", "rec", f"{WL}/animals/bird?_??.ogg", "*"),
                 ("scratch", "rec", f"{SCR}/Animal/Bird.wav", "*")],
    "mammal": [("widelands-data", "rec", f"{WL}/farm/{n}.ogg", "*")
               for n in ("donkey", "horse_0?", "ox_0?", "sheep_0?")]
    + [("widelands-data", "rec", f"{WL}/animals/{n}.ogg", "*")
       for n in ("boar", "moose_0?", "stag_0?", "wolf_0?", "coyote_0?")]
    + [("scratch", "rec", f"{SCR}/Animal/{n}", "*")
       for n in ("Horse.wav", "SeaLion.mp3", "Cat.mp3", "Kitten.wav", "Meow.wav",
                 "WolfHowl.wav", "Dog1.wav", "Dog2.wav")]
    + [("gcompris-qt-data", "rcc", f"{GC_FARM}/{n}.ogg", "*")
       for n in ("cat", "cow", "dog", "horse", "pig", "sheep")],
    "shaker": [("lmms-common", "hit", f"{LM}/drums/shaker0?.ogg", "lmms"),
               ("scratch", "hit", f"{SCR}/Percussion/Shaker.wav", "scratch")],
    "water": [("redeclipse-data", "rec", f"{RE}/{n}.ogg", "*")
              for n in ("creek", "river", "water", "waterfall*", "cavedrip", "morph/rain",
                        "morph/stormrain")]
    + [("scratch", "rec", f"{SCR}/Effects/{n}", "*")
       for n in ("Bubbles.wav", "Ripples.wav", "WaterDrop.mp3", "WaterRunning.mp3",
                 "Plunge.wav")]
    + [("gcompris-qt-data", "rcc", "memory-sound.rcc:memory-sound/LRRain_in_garden_01_LA_cut.ogg",
        "*")],
}  # fmt: skip

# instrument classes that add fluidsynth renders: class -> [(GM program, lowest key,
# highest key)], taken in turn; rendered from three soundfonts, 1-3 notes per clip,
# velocities 40-127.  brass avoids the trumpet/trombone presets that sounds/ renders.
REAL_RENDERED = {
    "piano": [(0, 33, 96), (1, 33, 96)],
    "violin": [(40, 55, 96)],
    "flute": [(73, 60, 96)],
    "brass": [(58, 28, 58), (60, 41, 77), (61, 48, 80)],
}
REAL_RENDER_SF = ("ms", "tim", "csf")
REAL_RENDER_PER_SF = 8  # rendered candidates per soundfont and class


def real_rate(sr: int) -> int:
    return sr if REAL_SR[0] <= sr <= REAL_SR[1] else REAL_SR_OTHER


def real_pieces(x: np.ndarray, sr: int, seed_label: str, max_pieces: int) -> list:
    """(onset s, piece) of a recording: trimmed, cut at zero crossings into 1.5-4 s
    pieces if longer than 5 s; quiet gaps (< -26 dB of the recording peak) skipped."""
    x = trim_silence(x, REAL_TRIM_DB)
    if len(x) <= REAL_DUR[1] * sr:
        return [(0.0, x)]
    rng = _rng(seed_label)
    peak = float(np.max(np.abs(x)))
    out: list = []
    start = 0
    while start < len(x) and len(out) < max_pieces:
        seg = cut_at_zero_crossing(x[start:], int(rng.uniform(*REAL_PIECE_S) * sr))
        t0 = start / sr
        start += len(seg)
        if len(seg) < 1.0 * sr:  # the rest of the recording is too short
            break
        if np.max(np.abs(seg)) < 0.05 * peak:
            continue
        out.append((t0, trim_silence(seg, REAL_TRIM_DB)))
    return out


def kit_layers(build: Path) -> dict[str, list[tuple[str, str, str, Path]]]:
    """class -> [(package, kit, source item, file)] from the Hydrogen kit files."""
    out: dict[str, list] = {}
    for pkg, kits in H2_KITS.items():
        for kit in kits:
            kdir = pkg_root(build, pkg) / H2 / kit
            root = ET.parse(kdir / "drumkit.xml").getroot()
            for ins in root.iter():
                if ins.tag.split("}")[-1] != "instrument":
                    continue
                fields = {c.tag.split("}")[-1]: (c.text or "").strip() for c in ins}
                name = fields.get("name", "")
                if (kit, name) in H2_SKIP or name not in H2_ONLY.get(kit, {name}):
                    continue
                # layers (new format) or one file per instrument (old format)
                files = [c.text.strip() for c in ins.iter()
                         if c.tag.split("}")[-1] == "filename" and c.text]  # fmt: skip
                for fn in dict.fromkeys(files):
                    text = f"{name} {fn}".lower()
                    cls = next((c for c, rx in H2_RULES if re.search(rx, text)), None)
                    if cls and (kdir / fn).exists():
                        out.setdefault(cls, []).append((pkg, kit, f"{kit}/{fn} ({name})",
                                                        kdir / fn))  # fmt: skip
    return out


def real_notes(cls: str, sf_key: str, i: int, lo: int, hi: int) -> list:
    """(key, velocity, onset s, length s) of rendered candidate ``i``: 1-3 notes."""
    rng = _rng(f"{cls}:{sf_key}", i)
    base = int(rng.integers(40, 128))
    notes, t = [], 0.0
    for _ in range(int(rng.integers(1, 4))):
        dur = round(float(rng.uniform(0.4, 1.4)), 2)
        vel = int(np.clip(base + int(rng.integers(-12, 13)), 1, 127))
        notes.append((int(rng.integers(lo, hi + 1)), vel, round(t, 2), dur))
        t += dur
    return notes


def spread(items: list) -> list:
    """Items reordered so that every prefix is spread over the (sorted) list."""
    order: list[int] = []
    seen: set[int] = set()
    for k in range(1, len(items) + 1):
        for i in np.round(np.linspace(0, len(items) - 1, k)).astype(int):
            if int(i) not in seen:
                seen.add(int(i))
                order.append(int(i))
    return [items[i] for i in order]


def interleave(lists: list[list]) -> list:
    """Round robin over the lists, in order, until all are used up."""
    out, lists = [], [list(x) for x in lists if x]
    while lists:
        for x in lists:
            out.append(x.pop(0))
        lists = [x for x in lists if x]
    return out


def real_candidates(build: Path, cls: str, layers: dict, rendered: dict) -> list[dict]:
    """Every usable clip of a class: dicts with pkg, sub, item, x, sr, src_sr."""
    specs: list[tuple[str, str, str, str, Path | None, str]] = []
    for pkg, kit, item, f in layers.get(cls, []):
        specs.append((pkg, "hit", kit, item, f, ""))
    rcc_cache: dict[str, dict[str, bytes]] = {}

    def rcc(pkg: str, name: str) -> dict[str, bytes]:
        if name not in rcc_cache:
            rcc_cache[name] = rcc_files(pkg_root(build, pkg) / GC / name)
        return rcc_cache[name]

    for pkg, kind, pattern, sub in REAL_FILES.get(cls, []):
        if kind == "rcc":
            rcc_name, res = pattern.split(":", 1)
            act, pat = res.split("/", 1)
            files = rcc(pkg, rcc_name)
            for key in sorted(files):
                if fnmatch.fnmatch(key, GC_RES.format(act, pat)):
                    name = Path(key).name
                    specs.append((pkg, "rcc", sub, f"{rcc_name}:{name}", None, key))
            continue
        # (Tux Paint keeps spoken descriptions, *_desc*.ogg, next to the animal sounds)
        found = [f for f in sorted(pkg_root(build, pkg).glob(pattern)) if "_desc" not in f.name]
        if not found:
            print(f"    {cls}: nothing matches {pkg}:{pattern}")
        for f in found:
            specs.append((pkg, kind, sub, f.name, f, ""))
    cands: list[dict] = []
    seen: set[int] = set()
    for pkg, kind, sub, item, f, key in specs:
        if sub == "*":
            sub = re.sub(r"_\d+$", "", Path(item.split(":")[-1]).stem)
        try:
            if kind == "rcc":
                x, sr = load(rcc(pkg, item.split(":")[0])[key])
            else:
                x, sr = load(f)
        except Exception as exc:  # noqa: BLE001 - skip undecodable files, keep going
            print(f"    {cls}: cannot read {item}: {exc}")
            continue
        if len(x) == 0 or np.max(np.abs(x)) < REAL_MIN_PEAK:
            continue
        digest = zlib.crc32(np.round(x * 32767).astype(np.int32).tobytes())
        if digest in seen:  # the same sample under another name
            continue
        seen.add(digest)
        if kind == "hit":
            parts = [(None, cut_at_zero_crossing(trim_silence(x, REAL_TRIM_DB),
                                                 int(REAL_DUR[1] * sr)))]  # fmt: skip
        else:
            parts = real_pieces(x, sr, f"{cls}:{item}", REAL_MAX_PIECES)
        for t0, y in parts:
            if len(y) < REAL_DUR[0] * sr or np.max(np.abs(y)) < REAL_MIN_PEAK:
                continue
            name = item if t0 is None or len(parts) == 1 else f"{item}@{t0:.2f}s"
            cands.append({"pkg": pkg, "sub": sub, "item": name, "x": y, "sr": sr,
                          "src_sr": str(sr)})  # fmt: skip
    for (c, sf_key, _i), (y, desc) in sorted(rendered.items(), key=lambda kv: kv[0]):
        if c != cls:
            continue
        y = cut_at_zero_crossing(trim_silence(y, REAL_TRIM_DB), int(REAL_DUR[1] * REAL_RENDER_SR))
        if len(y) >= REAL_DUR[0] * REAL_RENDER_SR and np.max(np.abs(y)) >= REAL_MIN_PEAK:
            cands.append(
                {
                    "pkg": SOUNDFONTS[sf_key][0],
                    "sub": sf_key,
                    "item": desc,
                    "x": y,
                    "sr": REAL_RENDER_SR,
                    "src_sr": f"rendered@{REAL_RENDER_SR}",
                }
            )
    return cands


def pick_real(cands: list[dict], n: int) -> list[dict]:
    """``n`` clips: round robin over packages, within a package over sub-sources
    (kits, recordings, soundfonts), within a sub-source spread over its sorted items."""
    by_pkg: dict[str, dict[str, list]] = {}
    for c in cands:
        by_pkg.setdefault(c["pkg"], {}).setdefault(c["sub"], []).append(c)
    queues = []
    for pkg in sorted(by_pkg):
        subs = by_pkg[pkg]
        queues.append(interleave([spread(subs[s]) for s in spread(sorted(subs))]))
    return interleave(queues)[:n]


def render_real(build: Path) -> dict[tuple[str, str, int], tuple[np.ndarray, str]]:
    """Rendered instrument candidates: (class, soundfont, i) -> (audio, source item)."""
    plan: dict[str, list[dict]] = {}
    for cls, programs in sorted(REAL_RENDERED.items()):
        for s, sf_key in enumerate(REAL_RENDER_SF):
            for i in range(REAL_RENDER_PER_SF):
                program, lo, hi = programs[i % len(programs)]
                c = {"cls": cls, "idx": 1000 * s + i, "kind": "melodic", "bank": 0,
                     "program": program, "sf": sf_key, "i": i,
                     "notes": real_notes(cls, sf_key, i, lo, hi)}  # fmt: skip
                plan.setdefault(sf_key, []).append(c)
    audio = render_all(build, plan, sr=REAL_RENDER_SR, gain=REAL_RENDER_GAIN)
    out = {}
    for sf_key, clips in plan.items():
        for c in clips:
            desc = (
                f"{Path(SOUNDFONTS[sf_key][1]).name} bank 0 program {c['program']}; "
                "(key,vel,onset,len): "
                + " ".join(f"({k},{v},{o:.2f},{d:.2f})" for k, v, o, d in c["notes"])
            )
            out[(c["cls"], sf_key, c["i"])] = (audio[(c["cls"], c["idx"])], desc)
    return out


def write_raw_clip(path: Path, x: np.ndarray, sr: int) -> float:
    """16-bit FLAC at the source level: no normalisation (samples beyond +-1 are clipped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -1.0, 1.0).astype(np.float32), sr, subtype="PCM_16",
             format="FLAC")  # fmt: skip
    return len(x) / sr


def make_realsounds(build: Path, out: Path, versions: dict, rows: list[dict]) -> None:
    layers = kit_layers(build)
    rendered = render_real(build)
    classes = sorted(set(REAL_FILES) | set(layers) | set(REAL_RENDERED))
    for cls in classes:
        chosen = pick_real(real_candidates(build, cls, layers, rendered), REAL_CLIPS)
        if len(chosen) < REAL_MIN_CLIPS:
            print(f"  {cls}: skipped (only {len(chosen)} clips)")
            continue
        for n, c in enumerate(chosen):
            sr = real_rate(c["sr"])
            y = resample(c["x"], c["sr"], sr)
            path = out / REAL_GROUP / cls / f"{cls}_{n:02d}.flac"
            dur = write_raw_clip(path, y, sr)
            rows.append(row(out, path, REAL_GROUP, cls, c["pkg"], versions[c["pkg"]],
                            c["item"], dur, c["src_sr"]))  # fmt: skip
        pkgs = sorted({c["pkg"] for c in chosen})
        print(f"  {cls}: {len(chosen)} clips from {', '.join(pkgs)}", flush=True)


# ----------------------------------------------------------------------------- checks


def row(out: Path, path: Path, group: str, label: str, pkg: str, ver: str, item: str,
        dur: float, src_sr: str) -> dict:  # fmt: skip
    return {
        "path": path.relative_to(out).as_posix(),
        "group": group,
        "label": label,
        "source_package": pkg,
        "source_version": ver,
        "source_item": item,
        "duration_s": f"{dur:.3f}",
        "source_sr": src_sr,
    }


GROUPS = ("sounds", "speakers", REAL_GROUP, HARD_GROUP)


def group_spec(group: str) -> dict:
    """What --check expects of a group's clips."""
    if group == REAL_GROUP:
        return {"rates": REAL_SR, "dur": REAL_DUR, "min_clips": REAL_MIN_CLIPS,
                "min_labels": REAL_MIN_LABELS, "min_peak": REAL_MIN_PEAK}  # fmt: skip
    if group == HARD_GROUP:
        return {"rates": (SPEAKER_SR, SPEAKER_SR), "dur": HARD_DUR, "min_clips": HARD_MIN_CLIPS,
                "min_labels": HARD_MIN_LABELS, "min_peak": 0.05}  # fmt: skip
    if group == "speakers":
        return {"rates": (SPEAKER_SR, SPEAKER_SR), "dur": SPEAKER_DUR, "min_clips": MIN_CLIPS,
                "min_labels": 30, "min_peak": 0.05}  # fmt: skip
    return {"rates": (SOUND_SR, SOUND_SR), "dur": SOUND_DUR, "min_clips": MIN_CLIPS,
            "min_labels": 25, "min_peak": 0.05}  # fmt: skip


def read_metadata(out: Path) -> list[dict]:
    meta = out / "metadata.csv"
    if not meta.exists():
        return []
    with open(meta, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_metadata(out: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: r["path"])
    tmp = out / "metadata.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out / "metadata.csv")


def check(out: Path, groups: tuple[str, ...] = GROUPS) -> bool:
    """Decode every FLAC; check rate, channels, length, level, counts, metadata."""
    ok = True
    meta = out / "metadata.csv"
    if not meta.exists():
        print(f"BAD: {meta} missing (build incomplete?)")
        return False
    rows = read_metadata(out)
    listed = {r["path"] for r in rows if r["group"] in groups}
    pkgs: dict[str, set] = {}
    for r in rows:
        pkgs.setdefault(r["path"].rsplit("/", 1)[0], set()).add(r["source_package"])
    seen = set()
    total_s = total_b = 0.0
    print(f"{'group':10s} {'label':28s} {'clips':>5s} {'mean s':>7s} {'min s':>6s} "
          f"{'max s':>6s} {'pkgs':>4s}")  # fmt: skip
    for group in groups:
        spec = group_spec(group)
        (rmin, rmax), (dmin, dmax) = spec["rates"], spec["dur"]
        gdir = out / group
        labels = sorted(p for p in gdir.iterdir() if p.is_dir()) if gdir.exists() else []
        g_s = g_b = 0.0
        for cdir in labels:
            durs = []
            for f in sorted(cdir.glob("*.flac")):
                rel = f.relative_to(out).as_posix()
                seen.add(rel)
                errs = []
                try:
                    x, sr = sf.read(str(f), dtype="float64", always_2d=True)
                except Exception as exc:  # noqa: BLE001
                    print(f"  BAD {rel}: does not decode ({exc})")
                    ok = False
                    continue
                dur = x.shape[0] / sr
                if not rmin <= sr <= rmax:
                    errs.append(f"rate {sr}")
                if x.shape[1] != 1:
                    errs.append(f"{x.shape[1]} channels")
                if sf.info(str(f)).subtype != "PCM_16":
                    errs.append("not PCM_16")
                if not dmin - 1e-3 <= dur <= dmax + 1e-3:
                    errs.append(f"duration {dur:.3f}s")
                if not np.all(np.isfinite(x)):
                    errs.append("non-finite")
                elif np.max(np.abs(x)) <= spec["min_peak"]:
                    errs.append("silent")
                if rel not in listed:
                    errs.append("not in metadata.csv")
                if errs:
                    ok = False
                    print(f"  BAD {rel}: {', '.join(errs)}")
                durs.append(dur)
                g_s += dur
                g_b += f.stat().st_size
            if len(durs) < spec["min_clips"]:
                ok = False
                print(f"  BAD {group}/{cdir.name}: only {len(durs)} clips")
            d = np.array(durs) if durs else np.zeros(1)
            n_pkg = len(pkgs.get(f"{group}/{cdir.name}", ()))
            print(f"{group:10s} {cdir.name:28s} {len(durs):5d} {d.mean():7.2f} "
                  f"{d.min():6.2f} {d.max():6.2f} {n_pkg:4d}")  # fmt: skip
        print(f"{group}: {len(labels)} labels, {g_s / 60:.1f} min, {g_b / 1e6:.1f} MB")
        total_s += g_s
        total_b += g_b
        if len(labels) < spec["min_labels"]:
            ok = False
            print(f"  BAD {group}: too few labels")
    for rel in sorted(listed - seen):
        ok = False
        print(f"  BAD metadata.csv lists missing file {rel}")
    print(f"clips: {len(seen)}, total duration: {total_s / 60:.1f} min, "
          f"FLAC size: {total_b / 1e6:.1f} MB")  # fmt: skip
    print("check:", "OK" if ok else "FAILED")
    return ok


def default_out() -> Path:
    env = os.environ.get("AUDIOGMM_DEVCORPUS")
    return Path(env).expanduser() if env else DEFAULT_OUT


def make_speakers_8k(out: Path) -> None:
    """``speakers8k/``: every speaker clip resampled to 8 kHz (telephone band), 16-bit FLAC.

    A stand-in for narrow-band speech: chooses defaults that must also hold on 8 kHz
    recordings. Derived from ``speakers/`` (not listed in metadata.csv); rebuilt when
    missing, so an existing build gains it on the next run.
    """
    dst = out / "speakers8k"
    if (dst / ".complete").exists():
        return
    if dst.exists():
        shutil.rmtree(dst)
    for src in sorted((out / "speakers").glob("*/*.flac")):
        y, sr = sf.read(src, dtype="float32")
        z = resample(y, sr, 8000)
        target = dst / src.parent.name / src.name
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, z, 8000, subtype="PCM_16")
    (dst / ".complete").write_text("")
    print(f"speakers8k: {dst}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="corpus folder (default: $AUDIOGMM_DEVCORPUS or "
                         "~/.cache/audiogmm/devcorpus)")  # fmt: skip
    ap.add_argument("--build-dir", type=Path, default=Path("/tmp/devcorpus_build"))
    ap.add_argument("--groups", default=",".join(GROUPS),
                    help="comma-separated groups to build or check (default: "
                         f"{','.join(GROUPS)}); the others are left as they are")  # fmt: skip
    ap.add_argument("--force", action="store_true",
                    help="rebuild the selected groups even if already built")  # fmt: skip
    ap.add_argument("--check", action="store_true", help="only validate an existing build")
    args = ap.parse_args()
    asked = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = sorted(set(asked) - set(GROUPS))
    if unknown or not asked:
        ap.error(f"--groups: unknown {unknown}; choose from {', '.join(GROUPS)}")
    groups = tuple(g for g in GROUPS if g in asked)
    out = (args.out.expanduser() if args.out else default_out()).resolve()
    if args.check:
        sys.exit(0 if check(out, groups) else 1)
    rows = read_metadata(out)
    todo = [g for g in groups if args.force or g not in {r["group"] for r in rows}]
    if not todo:
        print(f"{out}: {', '.join(groups)} already built (use --force to rebuild); checking")
        if "speakers" in groups:
            make_speakers_8k(out)
        sys.exit(0 if check(out, groups) else 1)
    t0 = time.time()
    build = args.build_dir.expanduser().resolve()
    packages = list(PACKAGES) if {"sounds", "speakers"} & set(todo) else []
    if REAL_GROUP in todo:
        packages += [p for p in REAL_PACKAGES if p not in packages]
    if HARD_GROUP in todo:
        packages += [p for p in HARD_PACKAGES if p not in packages]
    versions = fetch_packages(build, packages)
    # a group is complete once metadata.csv lists it: drop the rows of the groups
    # being rebuilt (and their folders) first, then add each group's rows when done
    for g in todo:
        for sub in (g, "speakers8k") if g == "speakers" else (g,):
            shutil.rmtree(out / sub, ignore_errors=True)
    rows = [r for r in rows if r["group"] not in todo]
    out.mkdir(parents=True, exist_ok=True)
    if (out / "metadata.csv").exists():
        write_metadata(out, rows)
    log: dict[str, str] = {}
    built: dict[str, list[dict]] = {}
    for g in ("speakers", "sounds", REAL_GROUP, HARD_GROUP):  # the historical order
        if g not in todo:
            continue
        print(g, flush=True)
        new: list[dict] = []
        if g == "speakers":
            make_speakers(build, out, versions, new, log)
        elif g == "sounds":
            make_sounds(build, out, versions, new)
        elif g == HARD_GROUP:
            make_hardspeakers(build, out, versions, new, log)
        else:
            make_realsounds(build, out, versions, new)
        built[g] = new
        rows += new
        write_metadata(out, rows)  # written after the group: marks it complete
        if g == "speakers":
            make_speakers_8k(out)
    print("package versions:", versions)
    for label, msg in sorted(log.items()):
        print(f"  {label}: {msg}")
    ok = check(out, groups)
    for g, new in built.items():
        total = sum(float(r["duration_s"]) for r in new)
        size = sum((out / r["path"]).stat().st_size for r in new)
        print(f"summary {g}: {len({r['label'] for r in new})} labels, {len(new)} clips, "
              f"{total / 60:.1f} min, {size / 1e6:.1f} MB")  # fmt: skip
    print(f"built {', '.join(built)} into {out} in {time.time() - t0:.0f} s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
