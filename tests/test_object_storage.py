"""`--out s3://bucket/run`: the whole pipeline against a real S3-compatible server (moto) on loopback.

`demix` runs in its own process, as a user runs it, with the endpoint and credentials in the usual
AWS variables; manifests, markers, clips, stems, export and report all land in the bucket.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO

BUCKET = "demix-test"


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "demix-test",
           "AWS_SECRET_ACCESS_KEY": "demix-test-secret", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


def demix(*args: str, env: dict, cwd) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "demix_pipeline.cli", *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"demix {' '.join(args)}:\n{done.stderr[-4000:]}"
    return done


def test_pipeline_end_to_end_on_object_storage(s3_server, media, tmp_path):
    import s3fs

    from demix_pipeline.manifest import read_stage

    fs = s3fs.S3FileSystem(use_listings_cache=False)
    out = f"s3://{BUCKET}/runs/small"
    inputs = [str(media / "multi_person_dialogue" / "pyscenedetect_bbc_documentary_issue195.mp4"),
              str(media / "music" / "difffoley_drum.mp4")]
    run_args = ["run", "--input", *inputs, "--out", out, "--set", "assign.test_size=0.5",
                "--set", "shots.detector.name=demix"]  # storage mechanics: the cheap detector is enough
    demix(*run_args, env=s3_server, cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing of the run written locally
    for stage in ("00_ingest", "01_shots", "02_audio_quality", "03_demix", "04_voiceover", "05_caption", "06_assign"):
        assert fs.exists(f"{BUCKET}/runs/small/{stage}/_SUCCESS"), stage
    assign = read_stage(out, "assign").to_pylist()
    kept = [r for r in assign if r["keep"]]
    assert len(assign) >= 4 and kept and all(r["error"] is None for r in assign)
    assert {r["split"] for r in kept} == {"train", "test"}
    clip = kept[0]
    for uri in (clip["clip_uri"], clip["demix.speech_uri"], clip["demix.effects_uri"], clip["demix.music_uri"]):
        assert fs.size(f"{BUCKET}/runs/small/{uri}") > 200, uri  # a gated stem that is all silence is under 1 KB of FLAC
    import av

    with av.open(io.BytesIO(fs.cat(f"{BUCKET}/runs/small/{clip['clip_uri']}"))) as container:  # a real clip
        assert container.streams.video[0].codec_context.width == clip["shots.clip_width"]

    # resume: a second run measures nothing
    again = demix(*run_args, env=s3_server, cwd=tmp_path)
    assert again.stderr.count("up-to-date") == 7, again.stderr[-2000:]
    # the same inputs on local disk give the same clips
    local = tmp_path / "local"
    demix("run", "--input", *inputs, "--out", str(local), "--stages", "ingest,shots", "--set", "shots.detector.name=demix",
          env=s3_server, cwd=tmp_path)
    local_shots = read_stage(local, "shots").select(["clip_id", "start_frame", "end_frame", "clip_uri"]).to_pylist()
    remote_shots = read_stage(out, "shots").select(["clip_id", "start_frame", "end_frame", "clip_uri"]).to_pylist()
    assert local_shots == remote_shots

    # decide, status, stats, export and report read and write the bucket too
    demix("decide", "voiceover", "--out", out, "--set", "voiceover.max_uncovered_s=10000", env=s3_server, cwd=tmp_path)
    voiceover = read_stage(out, "voiceover").to_pylist()
    assert all(r["keep"] for r in voiceover if r["error"] is None)
    status = json.loads(demix("status", "--out", out, "--json", env=s3_server, cwd=tmp_path).stdout)
    assert [r["state"] for r in status] == ["done"] * 7
    stats = json.loads(demix("stats", "--out", out, "--json", env=s3_server, cwd=tmp_path).stdout)
    assert stats["distinct_clips"] == len(kept)
    demix("export", "--out", out, env=s3_server, cwd=tmp_path)
    exported = fs.glob(f"{BUCKET}/runs/small/export/*/*/index.parquet")
    assert exported
    index = pq.read_table(io.BytesIO(fs.cat(exported[0]))).to_pylist()
    folder = exported[0].rsplit("/", 1)[0]
    sums = dict(line.split("  ")[::-1] for line in fs.cat(f"{folder}/checksums.sha256").decode().splitlines())
    import hashlib

    for shard in {r["shard"] for r in index}:
        assert hashlib.sha256(fs.cat(f"{folder}/{shard}")).hexdigest() == sums[shard]
    demix("report", "--out", out, env=s3_server, cwd=tmp_path)
    assert b"demix run report" in fs.cat(f"{BUCKET}/runs/small/report.html")
    assert list(p.name for p in tmp_path.iterdir()) == ["local"]
