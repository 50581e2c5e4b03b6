"""Writing result folders safely: atomic files, no silent overwrites, provenance.

Every writer here goes through :func:`atomic_write_bytes`, so a reader never
sees half a file and an interrupted run never leaves a truncated table.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import platform
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputExistsError, OutputWriteError

#: Files whose presence means "this folder already holds results".
RESULT_FILE_NAMES = (
    "bands.csv",
    "lanes.csv",
    "run.json",
    "failures.csv",
    "normalized.csv",
    "timecourse.csv",
    "flags.csv",
    "report.html",
)


def sha256_of_file(path, *, chunk_size=1 << 20):
    """Return the hex SHA-256 of a file, read in chunks to bound memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise OutputWriteError(f"{path}: could not be written ({error.strerror or error})") from None
    try:
        # mkstemp creates the file private (0600); results should get the user's usual mode.
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as error:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError):
            # A full disk or a quota is the user's to fix, in one line: not a traceback.
            reason = error.strerror or str(error)
            raise OutputWriteError(f"{path}: could not be written ({reason}); nothing half-written was "
                                   "kept, and an earlier version of the file, if any, is unchanged") from None
        raise


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _escape_undecodable(error):
    """Codec error handler: a byte of a file name that is not UTF-8 is written as ``\\xNN``.

    Python keeps such bytes as lone surrogates (U+DC80-U+DCFF); they cannot
    be encoded as UTF-8, and writing them raw would make the CSV or JSON
    file itself invalid UTF-8. ``blot\\xff.tif`` still says which file it was.
    """
    text = error.object[error.start : error.end]
    escaped = "".join(f"\\x{ord(char) - 0xDC00:02x}" if 0xDC80 <= ord(char) <= 0xDCFF else f"\\u{ord(char):04x}"
                      for char in text)
    return escaped, error.end


codecs.register_error("blotquant_escape", _escape_undecodable)


def printable(text):
    """``text`` with the undecodable bytes of a file name shown as ``\\xNN`` (for titles and messages).

    Examples
    --------
    >>> printable("blot\\udcff.tif")
    'blot\\\\xff.tif'
    """
    return str(text).encode("utf-8", errors="blotquant_escape").decode("utf-8")


def atomic_write_text(path, text):
    """Write UTF-8 ``text`` to ``path`` atomically (undecodable file-name bytes as ``\\xNN``)."""
    atomic_write_bytes(path, text.encode("utf-8", errors="blotquant_escape"))


#: First characters that make a spreadsheet read a cell as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(table):
    """A copy of ``table`` whose text cells cannot run as spreadsheet formulas.

    A sample id such as ``=HYPERLINK(...)`` or ``@SUM(A1)`` would be run by
    Excel or LibreOffice when the CSV is opened. Text cells (not numbers)
    that start with ``= + - @``, a tab or a carriage return get a leading
    apostrophe, which spreadsheets hide and treat as "this is text".
    """
    safe = table.copy()
    for column in safe.columns:
        if str(safe[column].dtype) in ("object", "string", "str"):
            values = safe[column]
            risky = values.map(lambda value: isinstance(value, str) and value.startswith(_FORMULA_STARTS))
            if risky.any():
                safe.loc[risky, column] = "'" + values[risky]
    return safe


def write_table(table, path):
    """Write a pandas DataFrame as CSV atomically (no index column), text cells spreadsheet-safe."""
    atomic_write_text(path, spreadsheet_safe(table).to_csv(index=False, lineterminator="\n"))


def write_json(obj, path):
    """Write ``obj`` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value):
    # numpy scalars and paths appear in parameter dicts.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def prepare_output_dir(out_dir, *, force=False):
    """Create ``out_dir`` or check that it may be written to.

    A new or empty folder is fine. A folder that already holds blotquant
    results is refused unless ``force`` is true, so that a second run never
    silently replaces numbers somebody has already looked at.

    Raises
    ------
    OutputExistsError
        If the folder holds results and ``force`` is false, or is a file.
    """
    if not str(out_dir).strip():
        raise OutputExistsError("--out is empty: name a results folder, e.g. --out results")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir}: exists and is not a folder; choose another --out")
    if out_dir.is_dir() and not force:
        existing = sorted(name for name in RESULT_FILE_NAMES if (out_dir / name).exists())
        if existing:
            raise OutputExistsError(
                f"{out_dir}: already holds results ({', '.join(existing)}); "
                "pass --force to replace them or choose a new --out folder"
            )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        # Under a file, too long a name, no permission, a full disk: say which.
        raise OutputExistsError(f"{out_dir}: cannot create the results folder ({error.strerror or error})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise OutputExistsError(f"{out_dir}: the results folder is not writable; choose another --out")
    return out_dir


def results_subfolder(out_dir, name):
    """The folder ``out_dir / name`` for outputs, refused when it is a symbolic link.

    A ``plots`` or ``overlays`` link left in a results folder would carry
    every file written "inside" it to wherever it points, past the promise
    that nothing is written outside ``--out``.

    Raises
    ------
    OutputExistsError
        If ``out_dir / name`` is a symbolic link (to anything, or dangling).
    """
    path = Path(out_dir) / name
    if path.is_symlink():
        raise OutputExistsError(
            f"{path}: is a symbolic link (to {os.readlink(path)}); blotquant writes only inside the "
            "results folder: remove the link or choose another --out"
        )
    return path


#: The file that marks a results folder as being written by a running blotquant.
LOCK_FILE_NAME = ".blotquant.lock"


@contextmanager
def locked_output_dir(out_dir, *, force=False):
    """Prepare ``out_dir`` (see :func:`prepare_output_dir`) and hold it for one run.

    Two runs into one folder would each find it empty and each report
    success while one's tables replace the other's. The first run takes a
    lock file (created exclusively, holding its host and process id); a second
    run is refused while that process lives. A lock left by a run that was
    killed (its process is gone) is taken over.

    Yields
    ------
    pathlib.Path
        The results folder.

    Raises
    ------
    OutputExistsError
        If another live run holds the folder, or as for :func:`prepare_output_dir`.
    """
    out_dir = prepare_output_dir(out_dir, force=force)
    lock = out_dir / LOCK_FILE_NAME
    _take_lock(lock, out_dir)
    try:
        # Under the lock, look again: a run that just finished may have filled it.
        prepare_output_dir(out_dir, force=force)
        yield out_dir
    finally:
        try:
            lock.unlink()
        except FileNotFoundError:
            pass


def _take_lock(lock, out_dir):
    try:
        taken = try_lock_file(lock)
    except OSError as error:
        raise OutputExistsError(f"{out_dir}: cannot write into the results folder ({error.strerror})") from None
    if not taken:
        raise OutputExistsError(
            f"{out_dir}: another blotquant run is writing into this folder (lock {lock.name}: "
            f"{_lock_owner(lock)}); wait for it to finish or choose another --out"
        )


def try_lock_file(lock):
    """Create the lock file ``lock`` exclusively, holding this host and process id.

    A lock whose owner is a process on this host that no longer runs (a
    killed run) is taken over. Returns False while another live owner holds
    it; the caller refuses or waits. The caller removes the file when done.

    Raises
    ------
    OSError
        When the lock cannot be created for another reason (no permission).
    """
    owner = f"{socket.gethostname()} {os.getpid()}\n".encode()
    for _attempt in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _lock_is_stale(lock):
                Path(lock).unlink(missing_ok=True)
                continue
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(owner)
        return True
    return False


def _lock_owner(lock):
    try:
        return lock.read_text(errors="replace").strip() or "owner unknown"
    except OSError:
        return "owner unknown"


def _lock_is_stale(lock):
    """Whether a lock's owner is a process on this host that no longer runs."""
    parts = _lock_owner(lock).split()
    if len(parts) != 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False  # another machine's run, or a lock being written: respect it
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def environment_record():
    """Versions of blotquant and its numeric dependencies, for run.json."""
    from importlib.metadata import PackageNotFoundError, version

    record = {"python": platform.python_version()}
    for name in ("blotquant", "numpy", "scipy", "scikit-image", "pandas", "tifffile", "pillow"):
        try:
            record[name] = version(name)
        except PackageNotFoundError:
            record[name] = None
    return record
