"""One run per workdir: a lock file naming the process that holds it.

`<workdir>/.lock` holds `{"pid", "host", "time"}`. It is created with
`O_CREAT | O_EXCL` (atomic); a second run on the same workdir is refused
with the holder's pid. A lock whose process is gone (same host, no such
pid) is stale: it is taken over, with a note. Locks from another host are
never taken over (the pid cannot be checked): the message says how to
remove the file. The lock is re-entrant within a process.
"""

import contextlib
import json
import os
import socket
import time

LOCK_FILENAME = ".lock"


class WorkdirInUseError(RuntimeError):
    """Another live process holds the workdir."""


@contextlib.contextmanager
def workdir_lock(workdir):
    """Holds `<workdir>/.lock` for the duration of the `with` block.

    Raises:
        WorkdirInUseError: naming the holder's pid (and host).
    """
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_FILENAME)
    acquired = _acquire(path)
    try:
        yield
    finally:
        if acquired:
            try:
                os.remove(path)
            except OSError:
                pass


def _acquire(path):
    """True if this call created the lock, False if this process held it."""
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "time": time.time()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder.get("pid") == me["pid"] and holder.get(
                    "host") == me["host"]:
                return False
            if not _is_stale(holder, me["host"], path):
                raise WorkdirInUseError(
                    f"{os.path.dirname(path)} is in use by process "
                    f"{holder.get('pid')} on {holder.get('host')} (lock "
                    f"{path}). Wait for it to finish, stop it, or choose "
                    "another --workdir. If that process is gone, delete "
                    "the lock file.") from None
            print(f"Taking over the stale lock {path} of process "
                  f"{holder.get('pid')}, which is no longer running.")
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return True
    raise WorkdirInUseError(f"Could not take the lock {path}; retry.")


def _read(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _is_stale(holder, host, path):
    pid = holder.get("pid")
    if not isinstance(pid, int):
        # Unreadable: stale, unless it may be one being written right now.
        try:
            return time.time() - os.path.getmtime(path) > 10
        except OSError:
            return True
    if holder.get("host") != host:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # Alive, another user's.
    return False
