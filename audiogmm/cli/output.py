"""Output: names escaped so that one file is always one line, the skipped list, JSON, the
cross-validation table.

Human output is one line per file, tab-separated, so :func:`escape_name` writes control,
format and line-separator characters of a name C-style (``\\n``, ``\\x1b``, ``\\u2028``),
and undecodable bytes (surrogate escapes) as ``\\xNN``. Everything else, backslashes
included, is left as it is (Windows paths read unchanged). ``--json`` keeps names exact.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import click

__all__ = ["dims_text", "echo_json", "escape_name", "format_selection", "report_skipped"]

_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
# control, format (e.g. bidi overrides), line/paragraph separators, lone surrogates
_UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def _escape_char(c: str) -> str:
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
        return f"\\x{n - 0xDC00:02x}"
    return _SHORT.get(c) or (f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000
                             else f"\\U{n:08x}")  # fmt: skip


def escape_name(text: object) -> str:
    """``str(text)`` (a file name, label or message) printable on one line.

    >>> escape_name("new\\nline.wav"), escape_name("plain é.wav")
    ('new\\\\nline.wav', 'plain é.wav')
    """
    s = str(text)
    if s.isprintable():  # the common case: nothing to do
        return s
    return "".join(_escape_char(c) if unicodedata.category(c) in _UNSAFE else c for c in s)


def dims_text(n_dims: int | tuple[int, ...]) -> str:
    """``26``, or ``26+39`` for a fused model's members."""
    return "+".join(map(str, n_dims)) if isinstance(n_dims, tuple) else str(n_dims)


def report_skipped(skipped: list[dict[str, str]]) -> None:
    """List skipped files and reasons on stderr, one escaped line each (at most 20); the
    count is the library's warning (``skipped N of M files``). Nothing with -qq."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and (ctx.find_object(dict) or {}).get("verbosity", 0) < -1:
        return
    for s in skipped[:20]:
        named = (f"{s['path']!r}: ", f"{s['path']}: ")  # the reason names the file too
        reason = next((s["reason"][len(n) :] for n in named if s["reason"].startswith(n)),
                      s["reason"])  # fmt: skip
        click.echo(f"  {escape_name(s['path'])}: {escape_name(reason)}", err=True)
    if len(skipped) > 20:
        click.echo(f"  ... and {len(skipped) - 20} more", err=True)


def echo_json(obj: Any) -> None:
    """``obj`` as one line of strict JSON (sorted keys; NaN and infinities as null)."""
    from ..pipeline.report import json_dumps

    click.echo(json_dumps(obj))


def format_selection(sel: dict[str, Any]) -> str:
    """The cross-validation table of a ``selection`` record (train, tune, info), as text."""
    rows = [(escape_name(r["front_end"])[:40], escape_name(r["components"])[:12], r)
            for r in sel["table"]]  # fmt: skip
    w = max([11, *(len(f) for f, _, _ in rows)])
    lines = [f"model selection: {sel['n_folds']}-fold CV by clip on the training files "
             f"(EM <= {sel['cv_max_iter']} iterations per fit, {sel['seconds']:.1f} s)",
             f"  {'stage':<11} {'front end':<{w}} {'components':<10} {'accuracy':>8} {'SE':>6}  "
             f"{'95% Wilson':<15} {'clips':>9}"]  # fmt: skip
    for fe, comp, r in rows:
        p, n = r["accuracy"], max(1, r["n"])
        se = (p * (1 - p) / n) ** 0.5 if 0 <= p <= 1 else float("nan")  # binomial
        lines.append(f"  {escape_name(r['stage'])[:11]:<11} {fe:<{w}} {comp:<10} {p:>8.3f} "
                     f"{se:>6.3f}  [{r['ci_low']:.3f}, {r['ci_high']:.3f}] {r['correct']:>4}/"
                     f"{r['n']:<4}" + (" *" if r.get("chosen") else ""))  # fmt: skip
    ks, backend = sorted(set(sel["n_components"].values())), sel.get("backend", "ml")
    k_text = str(ks[0]) if len(ks) == 1 else f"{ks[0]}-{ks[-1]} per class"
    lines.append(f"chosen: front end {escape_name(sel['front_end'])}, components "
                 f"{escape_name(sel['components_rule'])} (K = {k_text})"
                 + ("" if backend == "ml" else f", backend {escape_name(backend)}"))  # fmt: skip
    return "\n".join(lines)
