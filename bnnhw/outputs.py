"""Safe outputs: atomic files, owned and locked output folders, killable child tools.

Every command that writes files goes through this module, so the rules hold everywhere
(user docs: ``docs/reliability.md``):

* :func:`atomic_write` -- a file appears complete or not at all, with the usual
  permissions (``0666 & ~umask``, not ``mkstemp``'s 0600); its temporary file is
  removed on any failure, Ctrl-C and SIGTERM included.
* :func:`check_output_file` -- an output file's folder exists and is writable, checked
  before any long work starts (no folder is created for it).
* :func:`claim_folder` -- an output folder (``build -o DIR``, ``sim --work-dir DIR``)
  carries the marker file :data:`MARKER`.  A non-empty folder without it is refused
  (bnnhw never writes into, or deletes from, a folder of someone else's files); an
  exclusive ``flock`` on the marker makes a second concurrent run on the same folder
  fail at once (the kernel drops the lock when a run dies, however it dies); a stale
  temporary folder of a killed run is removed by the next run holding the lock.
* :func:`run_tool` -- a child tool runs in its own process group; on an exception
  (Ctrl-C, SIGTERM via :func:`install_signal_handlers`, a timeout) the whole group is
  stopped before the exception goes on.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .errors import BnnhwError

__all__ = ["MARKER", "TEMP_PREFIXES", "Terminated", "atomic_write", "check_output_file",
           "check_output_folder", "claim_folder", "remove_stale_temps", "run_tool",
           "install_signal_handlers", "exit_code"]

MARKER = ".bnnhw-output"
# Temporary entries bnnhw creates inside an output folder (removed when stale).
TEMP_PREFIXES = (".build-", ".tmp-bnnhw-")

_HELD: dict[str, list] = {}        # realpath of a claimed folder -> [fd, depth]


# ---------------------------------------------------------------------------- signals

class Terminated(KeyboardInterrupt):
    """SIGTERM (or another handled signal), raised like Ctrl-C's KeyboardInterrupt so the
    same clean-up runs; ``signum`` gives the exit code 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, frame):
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (SIGINT already raises
    KeyboardInterrupt).  A no-op outside the main thread."""
    try:
        signal.signal(signal.SIGTERM, _on_signal)
    except ValueError:      # not the main thread
        pass


def exit_code(exc: BaseException) -> int:
    """130 for Ctrl-C (SIGINT), 128 + signum for :class:`Terminated` (SIGTERM: 143)."""
    return 128 + getattr(exc, "signum", signal.SIGINT)


# ---------------------------------------------------------------------------- files

def _temp_name(path: str) -> str:
    d, base = os.path.split(os.path.abspath(path))
    return os.path.join(d, f"{TEMP_PREFIXES[1]}{os.getpid()}-{os.urandom(4).hex()}-{base}")


def atomic_write(path, data=None, *, write=None, text: bool = False) -> None:
    """Write ``path`` atomically: ``data`` (bytes, or str with ``text=True``) or whatever
    ``write(file_object)`` writes, into a temporary file in the same folder, then
    ``os.replace``.  The file gets the usual umask permissions; the temporary file never
    outlives a failure.  OSErrors become a :class:`BnnhwError` naming the path."""
    path = os.fspath(path)
    tmp = _temp_name(path)
    try:
        with open(tmp, "x" if text else "xb", **({"encoding": "utf-8"} if text else {})) as f:
            if write is not None:
                write(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _unlink_quiet(tmp)
        raise BnnhwError(f"cannot write {path!r}: {e.strerror or e}",
                         "choose a writable location with free space") from None
    except BaseException:
        _unlink_quiet(tmp)
        raise


def _unlink_quiet(p) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def check_output_file(path, option: str = "-o") -> str:
    """Check, before any long work, that ``path`` can be written: not a folder, its
    folder exists and takes a new file (tried with an empty temporary file, removed at
    once).  Returns the path; raises :class:`BnnhwError`."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise BnnhwError(f"{option} {path!r} is a folder", f"give a file name, e.g. "
                         f"{option} {os.path.join(path, 'model.pt')}")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise BnnhwError(f"{option} {path!r}: folder {d!r} does not exist",
                         f"create it first (mkdir -p {d}) or choose another {option}")
    probe = _temp_name(path)
    try:
        with open(probe, "xb"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise BnnhwError(f"{option} {path!r} cannot be written: {e.strerror or e}",
                         f"choose a writable location for {option}") from None
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise BnnhwError(f"{option} {path!r} is not writable", f"choose a writable location "
                         f"for {option}")
    return path


# ---------------------------------------------------------------------------- folders

def _foreign_entries(path: str) -> list[str]:
    """Names in ``path`` when it is a non-empty folder without the bnnhw marker."""
    try:
        names = sorted(os.listdir(path))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise BnnhwError(f"cannot read output folder {path!r}: {e.strerror}",
                         "choose a folder you can write to") from None
    return [] if MARKER in names else names


def check_output_folder(path, option: str = "-o") -> str:
    """Check, without creating anything, that ``path`` can be a bnnhw output folder: new,
    empty, or marked as one by an earlier run.  Raises :class:`BnnhwError` naming the
    folder's files otherwise."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise BnnhwError(f"output {path!r} exists and is not a folder",
                         f"give a folder name, e.g. {option} build-tfc")
    foreign = _foreign_entries(path)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more"
                                          if len(foreign) > 5 else "")
        raise BnnhwError(f"output folder {path!r} already holds files that bnnhw did not "
                         f"write ({shown}); bnnhw does not write into or delete from such a "
                         "folder", f"choose a new or empty folder for {option} (bnnhw marks "
                         f"its own folders with a {MARKER} file)")
    parent = os.path.dirname(os.path.abspath(path)) if not os.path.isdir(path) else path
    while parent and not os.path.isdir(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BnnhwError(f"output folder {path!r} is not writable ({parent!r})",
                         f"choose a writable location for {option}")
    return path


def _holder(marker: str) -> str:
    try:
        with open(marker, encoding="utf-8") as f:
            info = json.loads(f.read() or "{}")
        return f" (pid {info['pid']}, since {info['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def remove_stale_temps(path) -> list[str]:
    """Remove temporary entries (:data:`TEMP_PREFIXES`) in ``path``.  Only call while
    holding the folder's lock: a live run holds it, so what is left is a killed run's."""
    removed = []
    for name in os.listdir(path):
        if name.startswith(TEMP_PREFIXES) and name != MARKER:
            p = os.path.join(path, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                _unlink_quiet(p)
            removed.append(name)
    return removed


@contextlib.contextmanager
def claim_folder(path, *, kind: str, option: str = "-o"):
    """Hold ``path`` as this run's output folder for the ``with`` block.

    Creates it if needed, refuses a non-empty folder without the marker, takes an
    exclusive non-blocking ``flock`` on the marker (a concurrent run fails at once with a
    :class:`BnnhwError`), removes stale temporaries of killed runs, and yields the path.
    Re-entrant within a process.  A folder this call created that holds nothing but the
    marker at the end (the run failed before writing) is removed again."""
    path = os.fspath(path)
    real = os.path.realpath(path)
    if real in _HELD:
        _HELD[real][1] += 1
        try:
            yield path
        finally:
            _HELD[real][1] -= 1
        return
    check_output_folder(path, option)
    created = not os.path.exists(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise BnnhwError(f"cannot create output folder {path!r}: {e.strerror}",
                         f"choose a writable location for {option}") from None
    marker = os.path.join(path, MARKER)
    if _foreign_entries(path):          # someone else's files appeared meanwhile
        check_output_folder(path, option)
    fd = os.open(marker, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BnnhwError(f"output folder {path!r} is in use by another bnnhw run"
                         f"{_holder(marker)}", "wait for that run to finish, or choose "
                         f"another folder for {option}") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"bnnhw": kind, "pid": os.getpid(),
                                 "started": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode()
                 + b"\n")
        remove_stale_temps(path)
        _HELD[real] = [fd, 1]
        try:
            yield path
        finally:
            del _HELD[real]
            if created and os.listdir(path) == [MARKER]:
                _unlink_quiet(marker)
                with contextlib.suppress(OSError):
                    os.rmdir(path)
    finally:
        os.close(fd)                     # releases the lock


# ---------------------------------------------------------------------------- child tools

def _stop_group(proc: subprocess.Popen, grace: float = 2.0) -> None:
    """SIGTERM the child's process group, SIGKILL it after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_tool(argv, *, timeout: float | None = None, **popen_kw) -> int:
    """Run ``argv`` (Popen keyword arguments as for ``subprocess.run``) in a new process
    group and return its exit code.  On a timeout (``subprocess.TimeoutExpired`` is
    raised), Ctrl-C, SIGTERM or any other exception, the whole group is stopped first:
    no child tool outlives the run."""
    proc = subprocess.Popen(argv, start_new_session=True, **popen_kw)
    try:
        return proc.wait(timeout=timeout)
    except BaseException:
        _stop_group(proc)
        raise
