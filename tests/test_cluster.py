"""A real two-node Ray cluster on loopback: `ray start --head` plus a worker node with its own resources.

The pipeline runs in its own process through RAY_ADDRESS (as a user runs it against a cluster);
`_stage.json` records the node that measured each shard, which must name both nodes. The nodes
are started with `--block` in their own process groups and stopped by signalling those groups,
never with `ray stop` (that would also stop the test session's local Ray).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cluster_env(token: str) -> dict[str, str]:
    """Token authentication as a real cluster uses it: the same token on every node and the driver."""
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    return env


def wait_for_nodes(address: str, env: dict, count: int, timeout_s: float = 120.0) -> list[dict]:
    probe = ("import json, ray; ray.init(address=%r, log_to_driver=False); "
             "print(json.dumps([{'id': n['NodeID'], 'resources': n['Resources']} for n in ray.nodes() if n['Alive']]))")
    deadline = time.time() + timeout_s
    nodes: list[dict] = []
    while time.time() < deadline:
        done = subprocess.run([sys.executable, "-c", probe % address], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        if done.returncode == 0:
            nodes = json.loads(done.stdout.strip().splitlines()[-1])
            if len(nodes) >= count:
                return nodes
        time.sleep(2)
    raise AssertionError(f"cluster at {address} has {len(nodes)} of {count} nodes after {timeout_s} s")


def stop(proc: subprocess.Popen) -> None:
    """A throwaway node: a short grace, then its whole group (raylet, gcs, workers share it) is killed."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=3)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@pytest.fixture
def two_node_cluster():
    token = secrets.token_hex(32)
    env = cluster_env(token)
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths have a length limit
    address = f"127.0.0.1:{port}"
    common = ["--block", "--num-cpus=1", "--disable-usage-stats", f"--temp-dir={temp_dir}"]
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--include-dashboard=false", '--resources={"demix_head": 1}', *common],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    procs = [head]
    try:
        wait_for_nodes(address, env, 1)
        worker = subprocess.Popen([RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1",
                                   '--resources={"demix_worker": 1}', *common],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(worker)
        nodes = wait_for_nodes(address, env, 2)
        yield {"address": address, "env": env, "nodes": nodes}
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_pipeline_runs_on_both_nodes_of_a_two_node_cluster(two_node_cluster, media, tmp_path):
    cluster = two_node_cluster
    by_resource = {next(k for k in n["resources"] if k.startswith("demix_")): n["id"] for n in cluster["nodes"]}
    assert set(by_resource) == {"demix_head", "demix_worker"}
    inputs = [media / "multi_person_dialogue" / "pyscenedetect_bbc_documentary_issue195.mp4",
              *sorted((media / "music").glob("*.mp4"))[:3]]
    out = tmp_path / "run"
    env = dict(cluster["env"], RAY_ADDRESS=cluster["address"])
    done = subprocess.run([sys.executable, "-m", "demix_pipeline.cli", "run", "--input", *map(str, inputs),
                           "--out", str(out), "--stages", "ingest,shots",
                           "--set", "ingest.resources.shard_size=1", "--set", "shots.resources.shard_size=1",
                           "--set", "shots.detector.name=demix"],  # placement on nodes: the cheap detector is enough
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    used = set()
    for stage in ("00_ingest", "01_shots"):
        record = json.loads((out / stage / "_stage.json").read_text())
        assert record["shards"] == len(record["shard_nodes"]) >= 2
        used |= set(record["shard_nodes"].values())
    assert used == set(by_resource.values()), (used, by_resource)  # work ran on the head and on the worker node
    shots = json.loads((out / "01_shots" / "_stage.json").read_text())
    assert shots["rows_out"] >= len(inputs) and shots["errors"] == 0
    # the stream: audio_quality and demix at once, one actor of each (1 CPU apiece) on each node's one CPU
    streamed = subprocess.run([sys.executable, "-m", "demix_pipeline.cli", "run", "--out", str(out),
                               "--stages", "audio_quality,demix"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert streamed.returncode == 0, streamed.stderr[-3000:]
    nodes = set()
    for stage in ("02_audio_quality", "03_demix"):
        record = json.loads((out / stage / "_stage.json").read_text())
        assert record["streamed"]["measured"] == record["measured"] > 0 and record["errors"] == 0, record
        nodes |= set(record["streamed"]["nodes"])
    assert nodes == set(by_resource.values()), (nodes, by_resource)
