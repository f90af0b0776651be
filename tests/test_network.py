"""Nothing leaves the machine: a local `demix run` connects only to the loopback and to unix sockets.

The run is traced with `strace -f -e trace=connect` (every process it starts: the local Ray's GCS,
raylet, dashboard, agents and workers, ffmpeg); any connect() to another address fails the test, with the
process and address named. `make test` installs Debian's strace; without it the test fails in CI and is
skipped elsewhere.
"""
from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO

# what a local run may connect to; AF_UNSPEC dissolves a UDP socket's association, AF_NETLINK talks to the kernel
LOCAL_FAMILIES = {"AF_UNIX", "AF_LOCAL", "AF_UNSPEC", "AF_NETLINK"}
CONNECT = re.compile(r"^(?P<pid>\d+)\s+connect\(\d+,\s*\{sa_family=(?P<family>\w+)(?P<rest>.*)$")
ADDRESS = re.compile(r'inet_addr\("(?P<v4>[^"]+)"\)|inet_pton\(AF_INET6,\s*"(?P<v6>[^"]+)"')


def strace_binary() -> str:
    """strace, able to trace here; a fail in CI and a skip elsewhere when it is not."""
    ci = os.environ.get("CI", "").lower() == "true"
    found = shutil.which("strace")
    why = "strace is not installed (`make test` installs Debian's strace)" if not found else None
    if found:
        probe = subprocess.run([found, "-f", "-qq", "-e", "trace=connect", "-o", os.devnull, "true"],
                               capture_output=True, text=True, timeout=60, check=False)
        if probe.returncode != 0:
            why = f"strace cannot trace here (ptrace not permitted?): {probe.stderr.strip()[-300:]}"
    if why:
        if ci:
            pytest.fail(why)
        pytest.skip(why)
    return found


def is_loopback(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def connects(trace: Path) -> tuple[Counter, list[str]]:
    """(counts by kind, the connect() lines to anything but the loopback or a local socket)."""
    counts: Counter = Counter()
    outside = []
    for line in trace.read_text(errors="replace").splitlines():
        match = CONNECT.match(line)
        if not match:
            if "connect(" in line and "resumed>" not in line:
                outside.append(f"unparsed: {line}")  # a form this parser does not know fails rather than passes
            continue
        family = match["family"]
        if family in LOCAL_FAMILIES:
            counts[family] += 1
            continue
        address = ADDRESS.search(match["rest"])
        host = address and (address["v4"] or address["v6"])
        if family in ("AF_INET", "AF_INET6") and host and is_loopback(host):
            counts[f"{family} {host}"] += 1
            continue
        outside.append(line)
    return counts, outside


def test_a_local_run_connects_only_to_the_loopback(media, tmp_path):
    strace = strace_binary()
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(media / "talking_head_single" / "videoretalking_face_2.mp4", inputs)
    out, trace = tmp_path / "run", tmp_path / "connect.trace"
    # the package's own defaults, not the caller's: no cluster, no switches from outside
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_USAGE_STATS_ENABLED", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    sets = ["shots.detector.name=demix", "shots.encode.preset=ultrafast", "run.progress=false", "run.num_cpus=2"]
    cmd = [strace, "-f", "-qq", "-e", "trace=connect", "-o", str(trace),
           sys.executable, "-m", "demix_pipeline.cli", "run", "--input", str(inputs), "--out", str(out),
           "--until", "shots", *[arg for item in sets for arg in ("--set", item)]]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (out / "01_shots" / "_SUCCESS").exists()
    counts, outside = connects(trace)
    total = sum(counts.values()) + len(outside)
    print(f"\nconnect() calls of a local `demix run --until shots`: {total}; "
          + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
          + f"; elsewhere: {len(outside)}")
    assert total > 0, "strace saw no connect() at all: the trace is not of this run"
    assert not outside, "connect() to addresses off this machine:\n" + "\n".join(outside[:40])
