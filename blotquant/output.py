"""Writing result folders safely: atomic files, whole runs, no silent overwrites, provenance.

Every writer here goes through :func:`atomic_write_bytes`, so a reader never
sees half a file and an interrupted run never leaves a truncated table. A run
writes into a staging folder that replaces the results folder as a whole
(:func:`locked_output_dir`), so a reader never sees two runs mixed either.
"""

from __future__ import annotations

import codecs
import ctypes
import errno
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import stat
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputExistsError, OutputWriteError

#: Files whose presence means "this folder already holds results".
RESULT_FILE_NAMES = (
    "bands.csv",
    "lanes.csv",
    "marks.csv",
    "run.json",
    "failures.csv",
    "normalized.csv",
    "timecourse.csv",
    "peaks.csv",
    "linearity.csv",
    "flags.csv",
    "report.html",
)

#: Folders blotquant writes in a results folder, with the endings of the files it writes there.
RESULT_FOLDERS = {"plots": (".png", ".svg"), "overlays": (".png",)}

#: The ending of the overlays ``blotquant quantify`` writes beside its tables.
OVERLAY_SUFFIX = ".overlay.png"


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
        raise OutputWriteError(f"{_shown(path)}: could not be written ({error.strerror or error})") from None
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
            raise OutputWriteError(f"{_shown(path)}: could not be written ({reason}); nothing half-written was "
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

    A new or empty folder is fine, and so is one holding only files that are
    not blotquant results (notes, lane reviews). A folder that already holds
    results (see :data:`RESULT_FILE_NAMES`, :data:`RESULT_FOLDERS`, overlays)
    is refused unless ``force`` is true, so that a second run never silently
    replaces numbers somebody has already looked at.

    Raises
    ------
    OutputExistsError
        If the folder holds results and ``force`` is false, or is a file, or
        holds a link or folder where blotquant writes a file (or the reverse).
    """
    if not str(out_dir).strip():
        raise OutputExistsError("--out is empty: name a results folder, e.g. --out results")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir}: exists and is not a folder; choose another --out")
    if out_dir.is_dir():
        try:
            _refuse_misplaced_entries(out_dir)
            existing = [] if force else _existing_results(out_dir)
        except OSError as error:
            raise OutputExistsError(f"{out_dir}: cannot read the results folder ({error.strerror or error})") from None
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


def _refuse_misplaced_entries(out_dir):
    """Refuse a link or folder where blotquant writes a file, and a link or file where it writes a folder.

    The run replaces its results whole; such an entry is nobody's result
    and could not be carried across beside the new one.
    """
    for name in RESULT_FOLDERS:
        path = results_subfolder(out_dir, name)
        if path.exists() and not path.is_dir():
            raise OutputExistsError(f"{path}: is not a folder, but blotquant writes its {name} there; "
                                    "move it away or choose another --out")
    for name in RESULT_FILE_NAMES:
        path = out_dir / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise OutputExistsError(f"{path}: is a link or a folder, not a table blotquant wrote; "
                                    "move it away or choose another --out")


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


# ---------------------------------------------------------------------------
# What in a results folder is blotquant's


#: The file that marks a results folder as being written by a running blotquant.
LOCK_FILE_NAME = ".blotquant.lock"

#: Left in the folder that holds an earlier run's files while a run staged inside ``--out`` moves in.
_MOVED_ASIDE_MARK = ".blotquant.moved-aside"

# A temporary file of atomic_write_bytes (``.bands.csv.k2j_a8x1.tmp``) that a killed run left.
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp")

# Staging folders: ``.<out>.staging-<pid>`` beside the results folder, ``.blotquant.staging-<pid>`` inside it.
_LEFTOVER = r"(?P<kind>staging|replaced)-(?P<tag>\d+(?:-\d+)?)"


def _entries(folder):
    """The entries of ``folder`` (none when it has gone), sorted by name."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except FileNotFoundError:
        return []


def _kind_of(name, folder=None):
    """``"result"``, ``"debris"`` (a killed write's temporary file) or ``None`` for a file's name.

    ``folder`` is the result folder (``plots``, ``overlays``) the file is in,
    or None for the results folder itself.
    """
    match = _TEMPORARY.fullmatch(name)
    stem = match["name"] if match else name
    if folder is None:
        ours = stem in RESULT_FILE_NAMES or (stem.endswith(OVERLAY_SUFFIX) and len(stem) > len(OVERLAY_SUFFIX))
    else:
        ours = stem.endswith(RESULT_FOLDERS[folder]) and not stem.startswith(".")
    if not ours:
        return None
    return "debris" if match else "result"


def _classified(folder):
    """``(path, kind)`` for each thing in a results folder, one level into ``plots`` and ``overlays``.

    ``kind`` is ``"result"``, ``"debris"`` or ``None`` (not blotquant's: a
    person's notes, a lane review, a sub-folder). Only plain files named as
    blotquant names its outputs are results; the lock file is left out.
    """
    for entry in _entries(folder):
        if entry.name in (LOCK_FILE_NAME, _MOVED_ASIDE_MARK):
            continue
        if entry.name in RESULT_FOLDERS and entry.is_dir(follow_symlinks=False):
            for inner in _entries(entry.path):
                plain = inner.is_file(follow_symlinks=False)
                yield Path(inner.path), _kind_of(inner.name, entry.name) if plain else None
        else:
            plain = entry.is_file(follow_symlinks=False)
            yield Path(entry.path), _kind_of(entry.name) if plain else None


def _existing_results(out_dir):
    """Names of the results in ``out_dir`` (``plots/`` for the folder), sorted; empty when none."""
    names = set()
    for path, kind in _classified(out_dir):
        if kind == "result":
            relative = path.relative_to(out_dir)
            if len(relative.parts) > 1:
                names.add(f"{relative.parts[0]}/")
            else:
                names.add(f"*{OVERLAY_SUFFIX}" if path.name.endswith(OVERLAY_SUFFIX) else path.name)
    return sorted(names)


def _drain(source, target, which):
    """Move what is in ``source`` into ``target``: ``"all"``, the ``"results"`` or the ``"others"``.

    ``plots`` and ``overlays`` are merged file by file. Each move is a
    rename within one file system, so a file is always whole in one of the
    two folders. Returns what stayed because ``target`` has that name already.
    """
    source, target = Path(source), Path(target)
    stuck = []
    for path, kind in list(_classified(source)):
        if which != "all" and (kind is not None) != (which == "results"):
            continue
        destination = target / path.relative_to(source)
        if destination.parent != target and not destination.parent.is_dir():
            try:
                destination.parent.mkdir()
            except FileExistsError:  # a file of that name: keep this where it is
                pass
        if os.path.lexists(destination) or not destination.parent.is_dir():
            stuck.append(path)
            continue
        os.rename(path, destination)
    for name in RESULT_FOLDERS:
        try:
            os.rmdir(source / name)  # only when it was emptied
        except OSError:
            pass
    return stuck


# ---------------------------------------------------------------------------
# One run, one folder: the lock, the staging folder and the swap


#: Staging folder (as a string) -> the results folder it becomes, for messages.
_SHOWN_AS = {}


def _shown(path):
    """``path`` as the user knows it: inside ``--out``, not inside the run's staging folder."""
    text = str(path)
    for staging, out_dir in _SHOWN_AS.items():
        if text == staging or text.startswith(staging + os.sep):
            return out_dir + text[len(staging):]
    return text


@contextmanager
def locked_output_dir(out_dir, *, force=False):
    """Hold ``out_dir`` for one run, and have the run replace its results as a whole.

    Two runs into one folder would each find it empty and each report
    success while one's tables replace the other's. The first run takes a
    lock file (created exclusively, holding its host and process id); a second
    run is refused while that process lives. A lock left by a run that was
    killed (its process is gone) is taken over.

    The run is written into a fresh staging folder beside ``out_dir``
    (``.<name>.staging-<pid>``). Only when the ``with`` block ends without an
    error does that folder replace ``out_dir``: what blotquant did not write
    (see :func:`prepare_output_dir`) is moved into it, and the two folders are
    exchanged in one step (two renames where the system cannot exchange).
    A reader sees the earlier run or the new one, never a mixture; a run that
    fails or is killed leaves the earlier results as they were, and the next
    run tidies up after it (moving back any file that was on its way across).
    Where ``out_dir`` cannot be replaced by a rename (a mount point, the
    current folder, another user's folder, a parent that is not writable) the
    run is staged inside ``out_dir`` and its files are moved in one by one at
    the end; a kill during those moves is finished or undone by the next run.

    Yields
    ------
    pathlib.Path
        The staging folder: write everything there, not into ``out_dir``.
        Paths inside it are found in ``out_dir`` once the block has ended
        (see :func:`final_path`).

    Raises
    ------
    OutputExistsError
        If another live run holds the folder, or as for :func:`prepare_output_dir`.
    OutputWriteError
        If the finished run cannot be moved into place (the earlier results
        are then unchanged, or the message says where each run is).
    """
    out_dir = prepare_output_dir(out_dir, force=force)
    lock = out_dir / LOCK_FILE_NAME
    _take_lock(lock, out_dir)
    try:
        try:
            _recover_leftovers(out_dir)
        except OSError as error:
            raise OutputWriteError(f"{out_dir}: cannot tidy up after an earlier run that was killed "
                                   f"({error.strerror or error})") from None
        # Under the lock, look again: a run that just finished may have filled it.
        prepare_output_dir(out_dir, force=force)
        run = _StagedRun.begin(out_dir)
        try:
            yield run.staging
        except BaseException:
            run.abandon()
            raise
        run.commit()
    finally:
        # After a swap this is the staging folder's lock, which is this run's too.
        lock.unlink(missing_ok=True)


def final_path(value, staging, out_dir):
    """Where ``value``, a path inside the staging folder ``staging``, is once the run is in ``out_dir``.

    Anything else (another path, bytes, None) is returned unchanged.

    Examples
    --------
    >>> str(final_path(Path("/r/.out.staging-7/plots/a.png"), Path("/r/.out.staging-7"), "out"))
    'out/plots/a.png'
    """
    if isinstance(value, Path) and value.is_relative_to(staging):
        return Path(out_dir) / value.relative_to(staging)
    return value


class _StagedRun:
    """A run's staging folder, and how it takes the place of the results folder."""

    def __init__(self, out_dir, real, staging, tag, beside):
        self.out_dir, self.real, self.staging, self.tag, self.beside = out_dir, real, staging, tag, beside

    @classmethod
    def begin(cls, out_dir):
        """Make the staging folder: beside ``out_dir`` when a rename can swap it in, else inside."""
        real = Path(os.path.realpath(out_dir))
        if _can_swap(real):
            try:
                staging, tag = _new_staging(real.parent, f".{real.name}.", like=real)
                _SHOWN_AS[str(staging)] = str(out_dir)
                return cls(out_dir, real, staging, tag, beside=True)
            except OSError:
                pass  # a name too long, a group we cannot give it: stage inside instead
        try:
            staging, tag = _new_staging(real, ".blotquant.")
        except OSError as error:
            raise OutputExistsError(f"{out_dir}: cannot write into the results folder "
                                    f"({error.strerror or error})") from None
        _SHOWN_AS[str(staging)] = str(out_dir)
        return cls(out_dir, real, staging, tag, beside=False)

    def abandon(self):
        """The run failed: remove its staging folder; the results folder is as it was."""
        _SHOWN_AS.pop(str(self.staging), None)
        try:
            stuck = _drain(self.staging, self.real, "others")  # nothing, unless it failed while carrying
        except OSError:
            stuck = [self.staging]
        if stuck:
            _warn_kept(self.staging, stuck)
        else:
            shutil.rmtree(self.staging, ignore_errors=True)

    def commit(self):
        """The run is complete: put it in the place of the results folder."""
        try:
            if self.beside:
                self._swap()
            else:
                self._move_in()
        finally:
            _SHOWN_AS.pop(str(self.staging), None)

    def _swap(self):
        real, staging = self.real, self.staging
        try:
            # What blotquant did not write (notes, reviews) goes on with the new run.
            _drain(real, staging, "others")
        except OSError:
            # Say a read-only folder of the user's (its ".." cannot change): move the run in instead.
            try:
                back = _drain(staging, real, "others")
            except OSError:
                back = [staging]
            if not back:
                return self._move_in()
            raise OutputWriteError(f"{self.out_dir}: the new results could not be moved into place, and files "
                                   f"of yours on their way across are in {staging}; move them back yourself") from None
        try:
            old = staging if _exchange(staging, real) else self._swap_by_renames()
        except _Stranded as error:
            raise OutputWriteError(f"{self.out_dir}: the new results could not be moved into place "
                                   f"({error.reason}); they are in {staging}, and the earlier ones in "
                                   f"{error.old}") from None
        except OSError as error:
            self.abandon()
            raise OutputWriteError(f"{self.out_dir}: the new results could not be moved into place "
                                   f"({error.strerror or error}); the earlier results are unchanged") from None
        try:
            stuck = _drain(old, real, "others")  # anything saved into the earlier folder meanwhile
        except OSError:
            stuck = [old]
        _fsync_folder(real.parent)
        if stuck:
            _warn_kept(old, stuck)
        else:
            shutil.rmtree(old, ignore_errors=True)  # what is left over is tidied up by the next run

    def _swap_by_renames(self):
        """Rename the results folder aside and the staging folder into its place; the old folder's path."""
        old = self.real.parent / f".{self.real.name}.replaced-{self.tag}"
        os.rename(self.real, old)
        try:
            os.rename(self.staging, self.real)
        except OSError as error:
            try:
                os.rename(old, self.real)
            except OSError:
                raise _Stranded(error.strerror or str(error), old) from None
            raise
        return old

    def _move_in(self):
        real, staging = self.real, self.staging
        aside = real / f".blotquant.replaced-{self.tag}"
        try:
            aside.mkdir()
            _drain(real, aside, "results")
            (aside / _MOVED_ASIDE_MARK).touch(exist_ok=False)
        except OSError as error:
            if aside.is_dir():  # put the earlier run's files back
                try:
                    back = _drain(aside, real, "all")
                except OSError:
                    back = [aside]
                if back:
                    _warn_kept(aside, back)
                else:
                    shutil.rmtree(aside, ignore_errors=True)
            self.abandon()
            raise OutputWriteError(f"{self.out_dir}: the new results could not be moved into place "
                                   f"({error.strerror or error}); the earlier results are unchanged") from None
        try:
            stuck = _drain(staging, real, "all")
        except OSError as error:
            raise OutputWriteError(f"{self.out_dir}: the new results could not all be moved into place "
                                   f"({error.strerror or error}); the next run into it finishes the move") from None
        _fsync_folder(real)
        shutil.rmtree(aside, ignore_errors=True)
        if stuck:
            _warn_kept(staging, stuck)
        else:
            shutil.rmtree(staging, ignore_errors=True)


class _Stranded(Exception):
    """The staging folder could not be renamed into place, nor the earlier folder back."""

    def __init__(self, reason, old):
        super().__init__(reason)
        self.reason, self.old = reason, old


def _new_staging(folder, prefix, *, like=None):
    """Create ``<prefix>staging-<pid>`` in ``folder`` holding this run's lock; returns it and its tag.

    With ``like``, the new folder gets that folder's group and permissions,
    since it is to take that folder's place.
    """
    for attempt in range(100):
        tag = f"{os.getpid()}" if attempt == 0 else f"{os.getpid()}-{attempt}"
        staging = Path(folder) / f"{prefix}staging-{tag}"
        try:
            staging.mkdir()
        except FileExistsError:  # a leftover that was kept: never reuse it
            continue
        try:
            if like is not None:
                status = os.stat(like)
                if os.stat(staging).st_gid != status.st_gid:
                    os.chown(staging, -1, status.st_gid)
                os.chmod(staging, stat.S_IMODE(status.st_mode))
            try_lock_file(staging / LOCK_FILE_NAME)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging, tag
    raise FileExistsError(errno.EEXIST, "too many staging folders are left over", str(folder))


def _can_swap(real):
    """Whether the folder ``real`` may be replaced by renaming a sibling into its place.

    Not a mount point (a Docker volume, a network share), not the current
    folder or one above it (a shell there would be left in the deleted
    earlier folder), not another user's folder (the new one would be ours),
    and only where the parent folder is writable.
    """
    try:
        if os.path.ismount(real):
            return False
        here = os.path.realpath(os.getcwd())
        if here == str(real) or here.startswith(str(real).rstrip(os.sep) + os.sep):
            return False
        if hasattr(os, "getuid") and os.stat(real).st_uid != os.getuid():
            return False
    except OSError:
        return False
    return os.access(real.parent, os.W_OK | os.X_OK)


def _exchange(first, second):
    """Swap two folders in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``).

    Returns False where the system or the file system cannot (then two
    renames do it, with an instant in which ``second`` does not exist).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _fsync_folder(folder):
    """Make the renames in ``folder`` durable, where the system allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _recover_leftovers(out_dir):
    """Finish or undo what a killed run left beside or inside ``out_dir``.

    Called with the folder's lock held, so every staging folder whose own
    lock names no live process is a dead run's. A swap cut between its two
    renames is finished (the staged run was complete); otherwise the dead
    run's files are dropped and anything that was not a result, on its way
    across, goes back into ``out_dir``. A folder holding something that cannot
    go back (its name is taken) is kept, with a warning.
    """
    real = Path(os.path.realpath(out_dir))
    # Inside first: a run staged beside but moved in file by file keeps its earlier files inside.
    for beside, folder, prefix in ((False, real, ".blotquant."), (True, real.parent, f".{real.name}.")):
        groups = {}
        try:
            entries = _entries(folder)
        except OSError:  # a parent folder we may write but not list
            entries = []
        for entry in entries:
            match = re.fullmatch(re.escape(prefix) + _LEFTOVER, entry.name)
            if match and entry.is_dir(follow_symlinks=False):
                groups.setdefault(match["tag"], {})[match["kind"]] = Path(entry.path)
        for tag, group in groups.items():
            sibling = real.parent / f".{real.name}.staging-{tag}"
            if not beside and "staging" not in group and sibling.is_dir() and not sibling.is_symlink():
                group["staging"] = sibling
            if any(_held_by_live_run(path) for path in group.values()):
                continue  # another machine's run, or one still finishing
            staging, replaced = group.get("staging"), group.get("replaced")
            stuck = []
            if beside:
                if staging is not None:
                    whole = replaced is not None and not _existing_results(real)
                    stuck += _drain(staging, real, "all" if whole else "others")
                if replaced is not None:
                    stuck += _drain(replaced, real, "others")
            elif replaced is not None and (replaced / _MOVED_ASIDE_MARK).exists():
                # Killed while moving the new run in, the earlier one all aside: finish the move.
                stuck += _drain(staging, real, "all") if staging is not None else []
            else:
                # Killed while moving the earlier run aside, or before: undo, put it back.
                stuck += _drain(replaced, real, "all") if replaced is not None else []
                stuck += _drain(staging, real, "others") if staging is not None else []
            for path in group.values():
                kept = [item for item in stuck if item.is_relative_to(path)]
                if kept:
                    _warn_kept(path, kept)
                else:
                    shutil.rmtree(path, ignore_errors=True)


def _held_by_live_run(folder):
    lock = Path(folder) / LOCK_FILE_NAME
    return os.path.lexists(lock) and not _lock_is_stale(lock)


def _warn_kept(folder, kept):
    names = ", ".join(printable(Path(item).relative_to(folder)) for item in kept[:5])
    more = f" and {len(kept) - 5} more" if len(kept) > 5 else ""
    warnings.warn(f"{printable(folder)}: kept, it holds what blotquant did not write and could not move into "
                  f"the results folder, whose names are taken there ({names}{more}); move them yourself",
                  stacklevel=3)


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
