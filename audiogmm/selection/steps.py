"""The steps of :func:`~audiogmm.selection.tune`, each a function of the :class:`TuneState`.

Each reads what the earlier steps chose, adds its rows to the table and records its
choice; the rules it applies are :mod:`audiogmm.selection.rules`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from ..data import Record
from ..features import FeatureConfig
from ..models.classifier import N_COMPONENTS
from ..models.fusion import fit_fusion
from ..models.ubm import UBM_COMPONENTS
from .backends import backend_cv_scores
from .cv import median_cap, supported_grid
from .rules import (
    Option,
    beats_default,
    choose_components,
    choose_fusion,
    forward_fusion,
    one_standard_error,
    search_down,
)
from .state import (
    CMN,
    FRAME_STEP,
    MAX_FUSED,
    MIN_CLIPS_PER_CLASS,
    MIN_CV_CLIPS,
    SCREEN_FRAME_STEP,
    TuneState,
    table_row,
)

__all__ = ["BACKEND_SE", "STEPS", "step_backend", "step_components", "step_front_end",
           "step_front_ends", "step_fusion", "within_bandwidth"]  # fmt: skip

logger = logging.getLogger(__name__)

#: Standard errors by which another backend must beat the ml choice in CV. Two: a CV model
#: sees fewer clips, where MAP and supervectors gain most (on the hard dev speakers MAP was
#: 1.9 SE above ML in CV and 9 clips of 362 below it on the test side).
BACKEND_SE = 2.0


def within_bandwidth(
    cands: Mapping[str, FeatureConfig], records: Sequence[Record]
) -> dict[str, FeatureConfig]:
    """The candidates minus those that would only analyse upsampled audio.

    A front end above every file's native rate, after one that covers the native band,
    is skipped (``sound`` on 16 kHz speech); unreadable headers are left to the extraction.
    """
    from .. import audio

    native = 0
    for r in records:
        try:
            native = max(native, audio.info(r.path).sample_rate)
        except Exception:  # noqa: BLE001 - the extraction names the file and the reason
            continue
    out: dict[str, FeatureConfig] = {}
    for name, cfg in cands.items():
        if native and any(native <= c.sample_rate < cfg.sample_rate for c in out.values()):
            logger.info("front end %s skipped: %d Hz analysis, but no training file is sampled "
                        "above %d Hz", name, cfg.sample_rate, native)  # fmt: skip
            continue
        out[name] = cfg
    return out


def _default_k_unscorable(
    labels: Sequence[str], clips: Sequence[np.ndarray], grid: Sequence[int], n_folds: int
) -> bool:
    """Whether the default K fits most classes' data but not their CV folds."""
    if N_COMPONENTS not in grid:
        return False
    lens = [len(X) for X in clips]
    fits_final = median_cap(labels, lens) >= N_COMPONENTS
    return fits_final and N_COMPONENTS not in supported_grid(labels, lens, grid, n_folds)


# -- the steps ---------------------------------------------------------------------------------


def step_front_ends(state: TuneState) -> None:
    """Step 1: with ``--preset auto``, drop front ends above the files' band, add ``-cmn``."""
    if len(state.cands) < 2:
        return
    state.cands = within_bandwidth(state.cands, state.records)
    widest = list(state.cands)[-1]
    state.cands[f"{widest}-cmn"] = state.cands[widest].replace(**CMN)


def step_components(state: TuneState) -> None:
    """Step 2: the number of components, on the first (default) front end."""
    first = state.first
    _, clips, labels = state.features(first)
    searching = len(state.cands) > 1 or state.components == "auto"
    if searching and len(clips) < MIN_CV_CLIPS:
        logger.warning(
            "only %d training clips to cross-validate: the choice of %s is mostly noise "
            "(a clip more or less correct moves the accuracy by %.0f points); give a fixed "
            "--preset and -k, or more data", len(clips),
            "front end" if state.components != "auto" else "components and front end",
            100 / max(1, len(clips)),
        )  # fmt: skip
    fewest = min(Counter(labels).values())
    if searching and fewest < MIN_CLIPS_PER_CLASS:
        logger.warning(
            "a class has only %d training clip(s): too few to hold one out in each fold, so "
            "the data cannot support a choice; the default is kept unless another candidate "
            "wins clearly", fewest,
        )  # fmt: skip
    if state.components != "auto":
        k = int(state.components)
        state.screen_k, state.rule = k, "fixed"
        state.choices = {"fixed": {y: k for y in labels}}
        if len(state.cands) == 1:  # nothing to choose: still the configuration's CV accuracy
            state.sels[first] = sel = state.cv(first, [k])
            c, n = sel.accuracy_counts(sel.scores[k])
            state.table.append(table_row("components", first, f"K={k}", c, n))
            state.correct, state.n_scored = c, n
        return
    if _default_k_unscorable(labels, clips, state.grid, state.n_folds):
        # the CV folds (a third of the final data) cannot fit K=16, but the final
        # models can: a comparison would favour smaller K by the folds' size alone
        # (on the hard dev speakers CV chose K=8, which lost 2.5 points on the test
        # side), so the default K is kept
        state.screen_k, state.rule = N_COMPONENTS, f"K={N_COMPONENTS}"
        state.choices = {state.rule: {y: N_COMPONENTS for y in labels}}
        logger.info("components: K=%d kept (too few frames per fold to compare K)", N_COMPONENTS)
        return
    sel = search_down(
        state.cv, first, supported_grid(labels, [len(X) for X in clips], state.grid, state.n_folds)
    )
    options = []
    for k in sel.grid:
        c, n = sel.accuracy_counts(sel.scores[k])
        state.choices[f"K={k}"] = sel.capped({y: k for y in sel.labels})
        state.table.append(table_row("components", first, f"K={k}", c, n))
        options.append(Option(f"K={k}", c, float(k)))
    per_class = sel.choose()
    c, n = sel.accuracy_counts(sel.composite(per_class))
    state.choices["per-class"] = sel.capped(per_class)
    state.table.append(table_row("components", first, "per-class", c, n))
    # per-class picks one K per label (n_labels choices, not one) from the same folds:
    # the more flexible selection, so it ranks after every single K
    options.append(Option("per-class", c, float("inf")))
    state.rule = choose_components(options, n, default=f"K={N_COMPONENTS}")
    # the other front ends are compared at the K the data supports (the chosen single
    # K, or the best single K when per-class won)
    singles = [(o, k) for o, k in zip(options, sel.grid)]
    state.screen_k = next(
        (k for o, k in singles if o.name == state.rule), max(singles, key=lambda t: t[0].correct)[1]
    )
    state.sels[first] = sel
    state.correct = next(o.correct for o in options if o.name == state.rule)
    state.n_scored = n


def step_front_end(state: TuneState) -> None:
    """Step 3: every other front end at ``screen_k``; the simplest within one SE of the best."""
    state.front_end = state.first
    if len(state.cands) < 2:
        return
    k, singles = state.screen_k, []
    # the first at the K search's step when the backends will compare with it
    steps = {c: FRAME_STEP if rank == 0 and state.backends else SCREEN_FRAME_STEP
             for rank, c in enumerate(state.cands)}  # fmt: skip
    todo = [c for c in state.cands if c not in state.sels]  # the K search has screen_k
    for cand in todo:  # extracted here: an extraction is parallel by itself
        state.features(cand)
    # one front end's CV per worker, its fits inline: fewer, larger parallel tasks
    state.sels.update(zip(todo, state.executor.map(lambda c: state.cv(c, [k], steps[c]), todo)))
    for rank, cand in enumerate(state.cands):
        sel = state.sels[cand]
        c, n = sel.accuracy_counts(sel.scores[k])
        state.table.append(table_row("front end", cand, f"K={k}", c, n))
        singles.append(Option(cand, c, float(rank)))
    state.front_end = one_standard_error(singles, n)
    state.correct = next(o.correct for o in singles if o.name == state.front_end)
    state.n_scored = n
    state.choose("front end", state.front_end)


def step_fusion(state: TuneState) -> None:
    """Step 4: late fusion by forward selection from the chosen front end, its weights fitted."""
    if len(state.cands) < 2:
        return
    name, k = state.front_end, state.screen_k
    same_files = state.usable(name)  # fused score rows must be the same clips
    scores = {c: sel.scores[k] for c, sel in state.sels.items()}
    frames = {c: [len(X[:: state.steps[c]]) for X in state.features(c)[1]] for c in state.cands}
    ref = state.sels[name]
    path = forward_fusion(
        name, [c for c in state.cands if c != name and state.usable(c) == same_files], scores,
        frames, lambda S: ref.accuracy_counts(S)[0], MAX_FUSED,
    )  # fmt: skip
    fusions = {" + ".join(m): m for m, _ in path}
    options = [Option(name, state.correct, 1.0)]
    for members, c in path:
        state.table.append(table_row("fusion", " + ".join(members), f"K={k}", c, state.n_scored))
        options.append(Option(" + ".join(members), c, float(len(members))))
    chosen = choose_fusion(options, state.n_scored)
    state.choose("front end", chosen)
    state.choose("fusion", chosen)
    if chosen in fusions:
        state.members = fusions[chosen]
        held = ref.held
        state.fusion_weights = fit_fusion(
            [scores[m][held] for m in state.members],
            [np.asarray(frames[m])[held] for m in state.members], ref.y[held],
        )  # fmt: skip
    state.front_end = chosen
    state.correct = next(o.correct for o in options if o.name == chosen)
    if chosen != state.first and state.components == "auto":
        state.rule = f"K={k}"  # the K search ran on the first front end: the others take its K


def step_backend(state: TuneState) -> None:
    """Step 5: the other backends on the default front end, over one UBM per fold.

    Scored on step 2's folds; one replaces the ml choice only when it beats both that
    choice and the default K by :data:`BACKEND_SE` standard errors.
    """

    if not state.backends:
        return
    first = state.first
    _, clips, labels = state.features(first)
    ref = state.sels.get(first)
    if ref is None or N_COMPONENTS not in ref.grid or state.steps.get(first) != FRAME_STEP:
        ref = state.cv(first, [N_COMPONENTS])  # the default, at the backends' frame step
    base = max(state.correct, ref.accuracy_counts(ref.scores[N_COMPONENTS])[0])
    t1 = time.perf_counter()
    # every third frame, as the other front ends: a third cheaper, and it can only
    # handicap the backends against the ml choice, scored at every second
    scores = backend_cv_scores(clips, labels, state.backends, ref.folds,
                               frame_step=SCREEN_FRAME_STEP, random_state=state.random_state,
                               executor=state.executor)  # fmt: skip
    logger.info("backends %s: CV in %.2f s", list(state.backends), time.perf_counter() - t1)
    options = [Option("ml", base, 0.0)]
    for rank, backend in enumerate(state.backends, 1):
        c, n = ref.accuracy_counts(scores[backend])
        state.table.append(table_row("backend", backend, f"UBM {UBM_COMPONENTS}", c, n))
        options.append(Option(backend, c, float(rank)))
    state.backend = beats_default(options, "ml", n, n_se=BACKEND_SE)
    state.choose("backend", state.backend)
    if state.backend != "ml":  # the backend runs on the default front end alone
        state.front_end, state.members, state.fusion_weights = first, [], None
        state.choose("front end", first)
        state.choose("fusion", first)


#: The steps of :func:`tune`, in order.
STEPS = (step_front_ends, step_components, step_front_end, step_fusion, step_backend)
