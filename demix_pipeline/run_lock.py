"""One driver per run folder: the run lock, and the sweep of the temporary files a killed driver left.

`demix run` and `demix decide` hold `<run>/_run.lock` while they work. A second driver on the same run
folder stops at once with `RunLocked`, whose message names the holder (host, pid, start time, command)
and the lock file.

Local run folders (the main case): the lock file is opened and locked with `flock(LOCK_EX | LOCK_NB)` and
kept open while the driver works, and the holder's host, pid, start time and command are written into it.
The kernel drops the lock when the holder's process ends, however it ends (SIGKILL included), so a
driver that finds the file unlocked takes it over, saying whose run ended without releasing it; a clean
end removes the file. A file that names another host is not taken over (the lock of another machine's
process cannot be seen from here on every shared filesystem): the message says to remove the file if
that run is gone. On a filesystem without flock the file's content decides: a holder on this host whose
process is gone (or from before the last boot) is taken over, a live one or one on another host is not.

Object-storage run roots (`s3://...`, storage.py): object stores have no locks and no create-if-absent
that every fsspec backend offers, so this is the best honest thing and no more: the lock object
`<run>/_run.lock` (same content) is checked before the work starts, written, and read back to see that
this driver's write is the one that stands; it is removed when the driver ends. Two drivers that start
within the same moment can both pass the check, and a driver on another host that was killed leaves
an object that must be removed by hand (the message names it); a killed driver's object on this
host is taken over as above.

Holding the lock is what makes `sweep_leftovers` safe: no other driver of this run can be writing, so
the temporary names of interrupted writes (storage.TEMP_NAME: clips being encoded, stems, parts and
markers before their rename) under the run's artifacts and stage folders are leftovers of a killed run.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from demix_pipeline.config import STAGE_ORDER
from demix_pipeline.storage import TEMP_NAME, RunPath, is_local, run_root

LOCK_NAME = "_run.lock"


class RunLocked(RuntimeError):
    """Another driver holds the run folder."""


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid from its holder."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(holder: dict) -> str:
    return (f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, started {holder.get('started', '?')}"
            f" ({holder.get('command', '?')})")


def holder_state(holder: dict) -> str:
    """'alive', 'dead' or 'unknown' (another host) for the process a lock's content names."""
    if holder.get("host") != socket.gethostname():
        return "unknown"
    boot = _boot_id()
    if holder.get("boot_id") and boot and holder["boot_id"] != boot:
        return "dead"  # this machine rebooted since
    pid = holder.get("pid")
    if not isinstance(pid, int) or not _pid_alive(pid):
        return "dead"
    start = holder.get("process_start")
    now = _process_start(pid)
    if start and now and start != now:
        return "dead"  # the pid was reused by another process
    return "alive"


class RunLock:
    """`<run>/_run.lock`, held from `acquire()` to `release()` (see the module docstring)."""

    def __init__(self, out: str | os.PathLike | RunPath, command: str):
        self.root = run_root(out)
        self.path = self.root / LOCK_NAME
        self.command = command
        self.content = {"host": socket.gethostname(), "pid": os.getpid(),
                        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command,
                        "boot_id": _boot_id(), "process_start": _process_start(os.getpid()),
                        "token": uuid.uuid4().hex}
        self._fd: int | None = None
        self._made_root = False  # an empty run folder this lock made is removed with it (e.g. after a typo)
        self.taken_over: dict | None = None  # the content of a stale lock this driver took over

    # -- messages
    def _locked(self, holder: dict, why: str) -> RunLocked:
        return RunLocked(f"run folder {self.root} is held by another demix driver: {describe(holder)}; {why} "
                         f"(lock file {self.path})")

    def _refuse_or_take_over(self, holder: dict | None, lock_works: bool) -> None:
        """Given the content found in the lock (and whether a real lock was got), refuse or note a takeover."""
        if not holder or holder.get("token") == self.content["token"]:
            return
        state = holder_state(holder)
        if state == "unknown":
            raise self._locked(holder, "it runs on another host, so this driver cannot tell whether it still "
                                       "works; wait for it, or remove the lock file if that run is gone")
        if state == "alive" and not lock_works:
            raise self._locked(holder, "it is still running: wait for it to end or stop it")
        # dead, or alive but no longer holding the kernel lock (it closed the file): this driver takes over
        self.taken_over = holder
        print(f"demix: taking over the run lock of {self.root} from a driver that ended without releasing it: "
              f"{describe(holder)}", file=sys.stderr)

    # -- local folders
    def _acquire_local(self) -> None:
        import fcntl

        self._made_root = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                lock_works = True
            except BlockingIOError:
                holder = _parse(os.read(fd, 65536))
                os.close(fd)
                raise self._locked(holder or {}, "it is still running: wait for it to end or stop it") from None
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    os.close(fd)
                    raise
                lock_works = False  # a filesystem without flock: the content alone decides
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed the file between our open and our lock: open the new one
                os.close(fd)
                continue
            break
        try:
            self._refuse_or_take_over(_parse(os.pread(fd, 65536, 0)), lock_works)
            data = (json.dumps(self.content, indent=2) + "\n").encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _release_local(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            if _parse(self.path.read_bytes()).get("token") == self.content["token"]:
                self.path.unlink()  # before closing: a driver waiting on the old file sees it gone and reopens
        os.close(self._fd)
        self._fd = None
        if self._made_root:
            with contextlib.suppress(OSError):
                self.root.rmdir()  # only when nothing else was written

    # -- object storage
    def _acquire_object(self) -> None:
        if self.path.exists():
            self._refuse_or_take_over(_parse(self.path.read_bytes()), lock_works=False)
        with self.path.open("wb") as handle:
            handle.write((json.dumps(self.content, indent=2) + "\n").encode())
        time.sleep(0.5)  # a driver that wrote at the same moment: the write that stands is read back
        standing = _parse(self.path.read_bytes())
        if standing.get("token") != self.content["token"]:
            raise self._locked(standing, "it started at the same moment as this driver")
        self._fd = -1

    def _release_object(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError, OSError):
            if _parse(self.path.read_bytes()).get("token") == self.content["token"]:
                self.path.unlink()
        self._fd = None

    def acquire(self) -> RunLock:
        if is_local(self.root):
            self._acquire_local()
        else:
            self._acquire_object()
        return self

    def release(self) -> None:
        if is_local(self.root):
            self._release_local()
        else:
            self._release_object()


def _parse(data: bytes) -> dict:
    try:
        value = json.loads(data.decode() or "{}")
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def sweep_leftovers(out: str | os.PathLike | RunPath) -> list[RunPath]:
    """Remove the temporary files of interrupted writes under the run's artifacts and stage folders.

    Only safe while holding the run lock. Object stores have no such files (a write is one PUT)."""
    root = run_root(out)
    if not is_local(root) or not root.exists():
        return []
    folders = [root / "artifacts", *(p for p in root.iterdir() if p.is_dir() and _is_stage_folder(p.name))]
    removed = []
    for folder in folders:
        for path in folder.rglob(".*"):
            if TEMP_NAME.match(path.name) and path.is_file():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    if removed:
        print(f"demix: removed {len(removed)} temporary file(s) left by an interrupted run in {root}", file=sys.stderr)
    return removed


def _is_stage_folder(name: str) -> bool:
    number, _, stage = name.partition("_")
    return number.isdigit() and stage in STAGE_ORDER


@contextlib.contextmanager
def run_lock(out: str | os.PathLike | RunPath, command: str, sweep: bool = True) -> Iterator[RunLock]:
    """Hold the run lock of `out` for the block (RunLocked when another driver holds it); with `sweep`, first
    remove the temporary files a killed driver left."""
    lock = RunLock(out, command).acquire()
    try:
        if sweep:
            sweep_leftovers(lock.root)
        yield lock
    finally:
        lock.release()
