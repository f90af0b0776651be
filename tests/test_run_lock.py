"""One driver per run folder (demix_pipeline/run_lock.py), and a re-run sweeps a killed run's temporary files."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demix_pipeline.run_lock import LOCK_NAME, RunLock, RunLocked, run_lock, sweep_leftovers
from demix_pipeline.storage import TEMP_NAME
from tests.conftest import REPO

CLI = [sys.executable, "-m", "demix_pipeline.cli"]


def demix(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([*CLI, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_a_second_driver_stops_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    with run_lock(out, "demix run (test holder)") as lock:
        held = (out / LOCK_NAME).read_text()
        for args in (["run", "--input", str(tmp_path), "--out", str(out), "--until", "shots"],
                     ["decide", "shots", "--out", str(out)]):
            started = time.time()
            done = demix(*args, timeout=120)
            assert done.returncode != 0, done.stderr
            assert time.time() - started < 60  # stops before any work (the time is Python's start-up)
            message = done.stderr
            assert "held by another demix driver" in message, message
            assert f"pid {os.getpid()}" in message and f"host {socket.gethostname()}" in message, message
            assert lock.content["started"] in message and str(out / LOCK_NAME) in message, message
            assert (out / LOCK_NAME).read_text() == held  # the refused driver left the lock as it was
    assert not (out / LOCK_NAME).exists()  # a clean end removes it


def test_the_lock_of_a_killed_driver_is_taken_over(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from demix_pipeline.run_lock import RunLock; "
        f"RunLock({str(out)!r}, 'killed holder').acquire(); print('held', flush=True); time.sleep(600)")],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match=f"pid {holder.pid}"):
            RunLock(out, "second driver").acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid  # a kill leaves the file behind
    with run_lock(out, "next driver") as lock:
        assert lock.taken_over["pid"] == holder.pid
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_stale_lock_file_naming_a_dead_pid_is_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (out / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": gone.pid,
                                             "started": "2026-01-01T00:00:00+0000", "command": "demix run"}))
    with run_lock(out, "demix run") as lock:
        assert lock.taken_over["pid"] == gone.pid


def test_a_lock_from_another_host_is_not_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"host": "other-machine", "pid": 4242,
                                             "started": "2026-01-01T00:00:00+0000", "command": "demix run"}))
    with pytest.raises(RunLocked, match="host other-machine, pid 4242.*another host"):
        RunLock(out, "demix run").acquire()


def test_object_storage_run_roots_get_a_checked_lock_object():
    pytest.importorskip("upath")
    out = f"memory://demix-lock-test/run-{os.getpid()}"
    with run_lock(out, "demix run") as lock:
        assert json.loads(lock.path.read_text())["token"] == lock.content["token"]
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
            RunLock(out, "second driver").acquire()
    assert not lock.path.exists()


# ----------------------------------------------------------------------------------------------
# leftovers of a killed run

LEFTOVERS = ["artifacts/clips/ab/.ab12cd.0f1e2d3c.mp4",                         # media/cut.py, mid-encode
             "artifacts/stems/ab/.ab12cd.speech.flac.0f1e2d3c.tmp",             # stems (storage.temp_name)
             "artifacts/stems/ab/.ab12cd.music.flac.tmp.flac",                  # stems of earlier versions
             "01_shots/.part-00000.parquet.0f1e2d3c.tmp",                       # storage.write_bytes_atomic
             "01_shots/_measurements/.m-1-00000.parquet.0f1e2d3c.tmp"]
KEPT = ["artifacts/clips/ab/.notes", ".report.html.0f1e2d3c.tmp", "export/all/train/.shard-00000.tar.tmp"]


def test_sweep_removes_only_the_temporary_names_of_the_run_folder(tmp_path):
    for name in LEFTOVERS + KEPT:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * 1000)
    removed = sweep_leftovers(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in removed) == sorted(LEFTOVERS)
    assert all((tmp_path / name).exists() for name in KEPT)  # outside the stage folders, or not a temporary name


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME}


def test_a_run_killed_during_shots_leaves_no_temporary_clips_after_the_rerun(media, tmp_path):
    """SIGKILL `demix run` while ffmpeg encodes a clip (slow preset, so the temporary clip is seen), then
    run again: the temporary files are gone, everything else the killed run wrote is as it was."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(media / "sound_effects" / "vggsound_waterfall_burbling_7fRaV39Y-2o_50000_60000.mp4", inputs)
    out = tmp_path / "run"
    sets = ["shots.detector.name=demix", "shots.encode.preset=veryslow", "run.progress=false", "run.num_cpus=1"]
    cmd = [*CLI, "run", "--input", str(inputs), "--out", str(out), "--until", "shots",
           *[arg for item in sets for arg in ("--set", item)]]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, leftovers = time.time() + 300, []
    while time.time() < deadline and proc.poll() is None and not leftovers:
        leftovers = [p for p in (out / "artifacts").rglob(".*") if TEMP_NAME.match(p.name)]
        time.sleep(0.02)
    assert proc.poll() is None, f"run ended before a clip was being encoded: {proc.stderr.read().decode()[-2000:]}"
    time.sleep(0.3)  # let ffmpeg write a little more of it
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    leftovers = [p for p in (out / "artifacts").rglob(".*") if TEMP_NAME.match(p.name)]
    assert leftovers and json.loads((out / LOCK_NAME).read_text())["pid"] == proc.pid
    before = {k: v for k, v in _files(out).items() if not TEMP_NAME.match(k.rsplit("/", 1)[-1])}

    # the re-run measures nothing new (ingest is done; shots is not asked for): it only takes over and sweeps
    done = demix("run", "--input", str(inputs), "--out", str(out), "--stages", "ingest",
                 *[arg for item in sets for arg in ("--set", item)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "taking over the run lock" in done.stderr and "temporary file(s) left by an interrupted run" in done.stderr
    assert not [p for p in out.rglob(".*") if TEMP_NAME.match(p.name)]
    after = _files(out)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing else removed or changed
    assert not (out / LOCK_NAME).exists()
