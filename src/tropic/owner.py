"""One owner per embedded store: the OS lock every writer of a store (or of sim devices) holds.

A process that opens a store file for writing takes an exclusive ``flock`` on the file itself and keeps the
descriptor open for as long as it uses the store. The kernel drops the lock when the process ends, however
it ends, so a ``kill -9`` never leaves a stale lock. SQLite locks with ``fcntl`` record locks, which are
independent of ``flock`` on Linux, so the two never interfere; and the lock cannot be side-stepped by
deleting a lock file, because it is the store's own file that is locked.

The owner writes who it is (pid, host, command, start time and, for a server, its URL) into a holder file
beside the store (``store.db.owner``). That file only informs: a second opener is refused with
:class:`~tropic.errors.StoreInUse` naming the holder, and it changes nothing on disk.

The lock belongs to the process: opens of one file inside one process share it (the last release drops
it). Tests simulate a crash that way, by opening a store again without closing the first handle.
Distributed-mode sim devices are shared by several processes on purpose: they take the lock shared
(``LOCK_SH``), so they exclude an embedded owner, and it excludes them, but not each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tropic.errors import StoreError, StoreInUse

HOLDER_SUFFIX = ".owner"
HOLDER_WAIT_S = 1.0  # how long a refused opener waits for a new holder to finish writing who it is


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a store: written into the holder file by the owner, shown to anyone refused."""

    pid: int
    host: str
    command: str
    started: float  # seconds since the epoch
    url: str | None = None  # a server's API, which other processes should act through

    @staticmethod
    def current(*, command: str | None = None, url: str | None = None) -> Holder:
        """This process, doing ``command`` (default: the program and its sub-command)."""
        return Holder(os.getpid(), socket.gethostname(), command or _command(), time.time(), url)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.url is None:
            del out["url"]
        return out

    @staticmethod
    def from_dict(data: Any) -> Holder | None:
        """The holder a holder file describes, or None if it is not one (partly written, foreign)."""
        if not isinstance(data, dict):
            return None
        try:
            url = data.get("url")
            return Holder(
                int(data["pid"]),
                str(data["host"]),
                str(data["command"]),
                float(data["started"]),
                None if url is None else str(url),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def describe(self) -> str:
        """``tropic serve (pid 1234, http://127.0.0.1:8470) since 2025-01-02 10:00:00 UTC``."""
        where = [f"pid {self.pid}" + ("" if self.host == socket.gethostname() else f" on {self.host}")]
        if self.url:
            where.append(self.url)
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        return f"{self.command} ({', '.join(where)}) since {since}"

    def alive(self) -> bool:
        """False only when the holder is known to be gone (a process of this host that no longer runs)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _command() -> str:
    """``tropic serve``, ``tropic optimize rebalance``, ``pytest``: the program and its sub-commands (never
    its options, which may hold secrets)."""
    argv = sys.argv or ["python"]
    program = Path(argv[0]).name or "python"
    if program == "__main__.py":  # python -m PACKAGE: name the package, as its console script would
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        program = spec.name.split(".")[0] if spec is not None and spec.name else "python"
    words = [program]
    for arg in argv[1:3]:
        if arg.startswith("-") or "/" in arg or "=" in arg:
            break
        words.append(arg)
    return " ".join(words)


def holder_file(target: Path) -> Path:
    """Where the holder of ``target`` writes who it is."""
    return target.with_name(target.name + HOLDER_SUFFIX)


@dataclass(slots=True)
class _Held:
    """A lock this process holds: the descriptor keeping it, and how many opens share it."""

    fd: int
    target: Path
    holder: Holder | None  # None: held shared (nobody's details are written)
    count: int = 1
    announced: bool = False  # the holder file describes this holder


_held: dict[tuple[int, int], _Held] = {}  # (device, inode) of a locked file -> its lock
_held_lock = threading.Lock()


class OwnerLock:
    """One open's share of a lock this process holds on a file; :meth:`release` once done with it."""

    def __init__(self, key: tuple[int, int], entry: _Held) -> None:
        self._key = key
        self._entry: _Held | None = entry

    def announce(self) -> None:
        """Write who holds the lock into the holder file (once; nothing for a shared lock)."""
        with _held_lock:
            entry = self._entry
            if entry is None or entry.holder is None or entry.announced:
                return
            _write_holder_file(entry.target, entry.holder)
            entry.announced = True

    def release(self) -> None:
        """Give this share back; the last one drops the OS lock (and removes the holder file)."""
        with _held_lock:
            entry, self._entry = self._entry, None
            if entry is None:
                return
            entry.count -= 1
            if entry.count > 0:
                return
            _held.pop(self._key, None)
            if entry.holder is not None and entry.announced:
                _remove_holder_file(entry.target, entry.holder)
            os.close(entry.fd)  # closing the descriptor drops the flock


def acquire(
    target: str | os.PathLike[str],
    holder: Holder | None = None,
    *,
    what: str = "store",
    shared: bool = False,
    announce: bool = True,
) -> OwnerLock:
    """Lock ``target`` (created empty when missing) for this process.

    Exclusive by default, and then ``holder`` (default: this process) is written into the holder file,
    unless ``announce`` is False (call :meth:`OwnerLock.announce` once the file is known to be the right
    one: a foreign file gets no holder file beside it); ``shared`` for files several processes act on
    together. Raises :class:`~tropic.errors.StoreInUse` naming the holder when another process has it,
    :class:`~tropic.errors.StoreError` when the file cannot be opened or locked; either way nothing was
    changed."""
    path = Path(target)
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        raise StoreError(f"cannot open {what} {path}: {e.strerror or e}", path=str(path)) from None
    busy = False
    try:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        with _held_lock:
            entry = _held.get(key)
            if entry is not None:
                entry.count += 1
            else:
                try:
                    fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                except BlockingIOError:
                    busy = True
                except OSError as e:
                    raise StoreError(
                        f"cannot lock {what} {path}: {e.strerror or e}", path=str(path)
                    ) from None
                else:
                    entry = _held[key] = _Held(fd, path, None if shared else (holder or Holder.current()))
                    fd = -1  # the entry keeps it open: that is what holds the lock
    finally:
        if fd >= 0:
            os.close(fd)
    if busy or entry is None:
        raise in_use(path, what)
    lock = OwnerLock(key, entry)
    if announce:
        lock.announce()
    return lock


def read_holder(target: str | os.PathLike[str], *, wait_s: float = HOLDER_WAIT_S) -> Holder | None:
    """Who holds ``target`` according to its holder file, waiting up to ``wait_s`` for a holder that has
    just taken the lock to write it. None when no live holder is described (shared users write none)."""
    path = holder_file(Path(target))
    deadline = time.monotonic() + wait_s
    while True:
        try:
            holder = Holder.from_dict(json.loads(path.read_bytes()))
        except (OSError, ValueError):
            holder = None
        if holder is not None and holder.alive():
            return holder
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def in_use(path: Path, what: str) -> StoreInUse:
    holder = read_holder(path)
    if holder is None:
        who = f"another process (no details in {holder_file(path)}: shared by distributed-mode workers?)"
        advice = "stop it first"
    else:
        who = holder.describe()
        advice = (
            f"act through its API (--url {holder.url}) or stop it first"
            if holder.url
            else "wait for it to finish or stop it first"
        )
    where = os.path.abspath(path)
    return StoreInUse(
        f"{what} {where} is in use by {who}; {advice}",
        path=where,
        holder=None if holder is None else holder.to_dict(),
    )


def _write_holder_file(target: Path, holder: Holder) -> None:
    """Replace the holder file atomically, so a reader sees the old holder or the new one, never half."""
    final = holder_file(target)
    tmp = final.with_name(f"{final.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(holder.to_dict(), sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, final)
    except OSError:
        # The lock is what excludes other writers; the details only make the refusal clearer.
        with contextlib.suppress(OSError):
            tmp.unlink()


def _remove_holder_file(target: Path, holder: Holder) -> None:
    """Remove the holder file if it still describes ``holder`` (called while the lock is still held)."""
    final = holder_file(target)
    with contextlib.suppress(OSError, ValueError):
        if Holder.from_dict(json.loads(final.read_bytes())) == holder:
            final.unlink()


__all__ = ["Holder", "OwnerLock", "acquire", "holder_file", "read_holder"]
