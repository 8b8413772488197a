"""Atomic writes: a temporary file in the destination folder, fsync, ``os.replace``.

Every file audiogmm writes goes through :func:`atomic_write`; :func:`check_writable` finds
an unwritable output before the work."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import stat
import tempfile
import threading
import time
from typing import Any

__all__ = ["STALE_ANY_S", "STALE_DEAD_S", "atomic_write", "check_writable"]

_CLEANED: set[str] = set()  # folders this process cleaned
_CLEANED_LOCK = threading.Lock()
#: A temporary file whose writer (same host) is dead is removed once it is this old (s).
STALE_DEAD_S = 600.0
#: Any temporary file this old is removed, whoever wrote it (pid reuse, other hosts).
STALE_ANY_S = 86400.0
_TMP_RE = re.compile(r"\.tmp-(?:(\d+)-)?")


def _umask() -> int:
    # Linux >= 4.7: read it without changing it (os.umask is process-wide, racy)
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as fh:
            return next(int(ln.split()[1], 8) for ln in fh if ln.startswith("Umask:"))
    with _CLEANED_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _dead(pid: int | None) -> bool:
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        pass  # exists (another user's) or not a pid we can judge: keep the file
    return False


def _clean_stale_temps(folder: str) -> None:
    """Remove (once per folder and process) ``.tmp-*`` files older than :data:`STALE_ANY_S`,
    or than :data:`STALE_DEAD_S` when their writer (the pid in the name) is dead."""
    with _CLEANED_LOCK:
        if folder in _CLEANED:
            return
        _CLEANED.add(folder)
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for e in entries:
        m = _TMP_RE.match(e.name)
        try:
            if not m or not stat.S_ISREG((st := e.stat(follow_symlinks=False)).st_mode):
                continue
            age = now - st.st_mtime
            if age > STALE_ANY_S or (age > STALE_DEAD_S and _dead(m[1] and int(m[1]))):
                os.unlink(e.path)
        except OSError:
            continue  # vanished (another cleaner) or not ours to remove


def atomic_write(path: str | os.PathLike, data: Any) -> str:
    """Write ``data`` (bytes, text as UTF-8, CSV rows streamed, or a ``write(fileobj)``
    callable) to a temporary file next to ``path``, then rename it: readers see the old
    file or the whole new one, never a partial one. A new file gets mode ``0o666 & ~umask``,
    an overwritten one keeps its mode; a failure names ``path``. Returns ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        _clean_stale_temps(folder)
        try:
            file_mode = stat.S_IMODE(os.stat(path).st_mode) & 0o777  # never set-id bits
        except FileNotFoundError:
            file_mode = 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".tmp-{os.getpid()}-",
                                   suffix="-" + os.path.basename(path))
    except OSError as e:
        raise _output_error(path, e) from None
    try:
        os.fchmod(fd, file_mode)  # mkstemp makes 0600 whatever the umask
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            elif isinstance(data, (str, bytes)):
                f.write(data.encode() if isinstance(data, str) else data)
            else:
                text = io.TextIOWrapper(f, encoding="utf-8", newline="")
                csv.writer(text, lineterminator="\n").writerows(data)
                text.detach()  # flushes, and leaves f open for the fsync
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        # a failed write (ENOSPC has no file name) or rename: name the user's file, not ours
        if isinstance(e, OSError) and e.filename in (None, tmp):
            raise _output_error(path, e) from None
        raise


def _output_error(name: str, e: OSError) -> OSError:
    """``e``'s type and errno, with a message naming the user's output ``name`` and the reason."""
    out = type(e)(f"{name}: cannot write the output there ({(e.strerror or str(e)).lower()})")
    out.errno = e.errno
    return out


def check_writable(path: str | os.PathLike, *, folder: bool = False, create: bool = True) -> None:
    """OSError naming ``path`` and the reason when it could not be written: a probe file in
    its folder (``path`` itself with ``folder=True``), after creating the missing folders, or
    with ``create=False`` in the nearest existing one (the write makes the rest later)."""
    name = os.fspath(path)
    target = os.path.abspath(name)
    if not folder and os.path.isdir(target):
        raise IsADirectoryError(f"{name}: is a folder; give a file name for the output")
    try:
        where = target if folder else os.path.dirname(target)
        if create:
            os.makedirs(where, exist_ok=True)
        while not os.path.lexists(where) and os.path.dirname(where) != where:  # a missing drive
            where = os.path.dirname(where)
        fd, probe = tempfile.mkstemp(dir=where, prefix=f".tmp-{os.getpid()}-", suffix="-probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise _output_error(name, e) from None
