"""Writing files and folders with one-line errors that name the path.

An OSError from the file system (a read-only disk, a path that exists as a file, a full disk, no permission)
becomes a :class:`WriteError` whose message is one line: what the path is for, the path, and what went wrong,
e.g. ``output_dir /data/run: cannot write there: read-only file system``. WriteError is a ValueError, like
config's ConfigError (which utils may not import), and an OSError: print ``str(err)`` as the message, never a
traceback (a caller in train/ may re-raise it as ConfigError(str(err))).

    check_writable_dir(path, what)       create the folder if needed and prove a file can be written in it
    atomic_write_text(path, text, what)  write a text file whole or not at all (temporary file, then rename)
    atomic_write_bytes(path, data, what) the same for bytes
    atomic_writer(path, what)            the same as a context manager yielding a binary file object
"""

from __future__ import annotations

import errno
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_REASONS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EISDIR: "it is a folder",
}


class WriteError(OSError, ValueError):
    """A path that cannot be written: the message is one line naming it (see the module docstring); its errno,
    strerror and filename are unset, so handlers of OSError print that line as it is."""


def _blocking_file(path: Path) -> Path | None:
    """The path itself or its nearest existing parent, when that is a file rather than a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def describe(err: OSError, path: Path) -> str:
    """Why ``path`` cannot be written, in words (a file in the way, read-only, full, ...)."""
    blocking = _blocking_file(path) if err.errno in (errno.EEXIST, errno.ENOTDIR) else None
    if blocking is not None:
        return "it exists as a file, not a folder" if blocking == path else f"{blocking} is a file, not a folder"
    reason = _REASONS.get(err.errno or 0) or (err.strerror or str(err)).lower()
    return f"{reason} ({err.filename})" if err.filename and str(err.filename) != str(path) else reason


def write_error(err: OSError, path: str | os.PathLike, what: str) -> WriteError:
    path = Path(path)
    return WriteError(f"{what} {path}: cannot write there: {describe(err, path)}")


def check_writable_dir(path: str | os.PathLike, what: str) -> Path:
    """Create folder ``path`` (and its parents) if it is missing, then write and remove a probe file in it, so a
    run learns before any model loads that it can save there. ``what`` names the path in the error (e.g.
    "output_dir"). Returns the path; raises WriteError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise WriteError(f"{what} {path}: cannot write there: it exists as a file, not a folder; choose another "
                         "path or remove the file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".tunesmith-write-check-"):
            pass
    except OSError as err:
        raise write_error(err, path, what) from None
    return path


@contextmanager
def atomic_writer(path: str | os.PathLike, what: str = "file") -> Iterator:
    """Yield a binary file object; on leaving the block it replaces ``path`` whole (a temporary file in the same
    folder, renamed over it), so a reader sees the old file or the new one, never a partial one. The folder is
    created if needed. On an OSError the temporary file is removed and WriteError raised; any other exception
    from the block removes it too and propagates unchanged."""
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except WriteError:
        raise
    except OSError as err:
        raise write_error(err, path, what) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, what: str = "file") -> None:
    with atomic_writer(path, what) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, what: str = "file", encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` whole or not at all; raises WriteError naming ``what`` and the path."""
    atomic_write_bytes(path, text.encode(encoding), what)
