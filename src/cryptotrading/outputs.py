"""Files written for the user (candle exports, schema dumps): the target is checked
before any work is done, and the file is written whole or not at all.

A target must be a regular file (or not exist yet) in an existing directory: a
directory, a device (``/dev/full``), a FIFO or a socket is refused up front, never
replaced. The content goes to a hidden temporary file beside the target, is flushed
to disk and renamed over the target, so a full disk or a failing write leaves the
previous file (or no file) in place. Every failure is a :class:`ValidationError`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from cryptotrading.errors import ValidationError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """``a directory``, ``a character device`` ... for a non-regular *mode*."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_output(path: Path, *, overwrite: bool = True, force_flag: str = "--force") -> Path:
    """The resolved file that writing *path* would create or replace; a
    :class:`ValidationError` when it cannot be written (its directory is missing, it
    is not a regular file, or it exists and *overwrite* is false)."""
    try:
        target = path.resolve()  # follows symlinks: write where the link points
        mode: int | None = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except (OSError, ValueError, RuntimeError) as exc:  # too long, a loop, a NUL byte
        raise ValidationError(
            f"cannot write {path}: {_reason(exc)}", hint="Choose another output path."
        ) from None
    if mode is not None and not stat.S_ISREG(mode):
        raise ValidationError(
            f"cannot write {path}: it is {file_kind(mode)}, not a regular file",
            hint="Give the path of a (new or existing) regular file.",
        )
    if mode is not None and not overwrite:
        raise ValidationError(
            f"{path} already exists",
            hint=f"Pass {force_flag} to overwrite it, or choose a new path.",
        )
    if not target.parent.is_dir():
        raise ValidationError(
            f"cannot write {path}: directory {target.parent} does not exist",
            hint="Create the directory first, or choose another output path.",
        )
    return target


def write_output(
    path: Path,
    write: Callable[[Path], None],
    *,
    overwrite: bool = True,
    force_flag: str = "--force",
) -> Path:
    """Check *path* (:func:`check_output`), let *write* fill a temporary file beside
    it, flush it to disk and rename it over *path*; on any failure nothing is left."""
    target = check_output(path, overwrite=overwrite, force_flag=force_flag)
    temporary = target.with_name(f".{target.name[:180]}.{secrets.token_hex(6)}.partial")
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise ValidationError(
            f"cannot write {path}: cannot create a file in {target.parent} ({_reason(exc)})",
            hint="Write into a directory where you may create files.",
        ) from None
    try:
        write(temporary)
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        if not overwrite:
            check_output(path, overwrite=False, force_flag=force_flag)  # created meanwhile?
        os.replace(temporary, target)
    except OSError as exc:
        raise ValidationError(
            f"cannot write {path}: {_reason(exc)}; nothing was written",
            hint="Check free space and permissions of the directory, or choose another path.",
        ) from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
    return target


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)[:200] or type(exc).__name__
