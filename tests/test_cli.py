"""The `demix` command: run/status/decide/sample through the real entry point."""
from __future__ import annotations

import json
import subprocess
import sys

from demix_pipeline.cli import main


def demix(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "demix_pipeline.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_sample_run_status_decide(tmp_path):
    corpus, out = tmp_path / "corpus", tmp_path / "run"
    assert demix("sample", "--out", str(corpus)).returncode == 0
    truth = json.loads((corpus / "truth.json").read_text())
    # through shots: what this test reads (the later stages through the CLI: tests/test_object_storage.py, `make demo`)
    done = demix("run", "--input", str(corpus / "sources.csv"), "--out", str(out), "--until", "shots",
                 "--set", "run.progress=false")
    assert done.returncode == 0, done.stderr[-3000:]
    status = demix("status", "--out", str(out))
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert lines[0].split()[:2] == ["stage", "state"] and any(line.split()[:2] == ["01_shots", "done"] for line in lines)
    rows = {r["stage"]: r for r in json.loads(demix("status", "--out", str(out), "--json").stdout)}
    assert rows["00_ingest"]["kept"] == 3 and rows["01_shots"]["shards_pending"] == 0
    import pyarrow.parquet as pq

    clips = pq.read_table(out / "01_shots").to_pylist()
    cinematic = sorted(c["start_s"] for c in clips if c["shots.cut_in"] == "hard")
    expected = sorted(t for info in truth.values() for t in info["cuts_s"])
    assert len(cinematic) == len(expected)
    assert all(abs(a - b - 2 / 25) < 0.01 for a, b in zip(cinematic, expected))  # 2 frames trimmed after each cut
    decided = demix("decide", "shots", "--out", str(out), "--set", "shots.min_clip_s=3.9")
    assert decided.returncode == 0 and "too_short" in decided.stdout


def test_errors_exit_2_with_a_clear_message(tmp_path, capsys):
    assert main(["run", "--input", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o")]) == 2
    assert "input not found" in capsys.readouterr().err
    assert main(["run", "--input", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "shots.bogus=1"]) == 2
    assert "unknown key 'shots.bogus'" in capsys.readouterr().err
    assert main(["run", "--input", str(tmp_path), "--out", str(tmp_path / "o"), "--kind", "tv"]) == 2
    assert "--kind 'tv'" in capsys.readouterr().err
    assert main(["decide", "shots", "--out", str(tmp_path / "empty")]) == 2
    assert "no finished measurements" in capsys.readouterr().err
    assert main(["run", "--out", str(tmp_path / "o"), "--stages", "voiceover"]) == 2
    assert "needs stage demix to have finished" in capsys.readouterr().err
    assert main(["run", "--out", str(tmp_path / "o"), "--stages", "assign"]) == 2
    assert "needs stage caption to have finished" in capsys.readouterr().err


def test_input_lists_carry_source_kind(tmp_path):
    from demix_pipeline.stages.ingest import InputError, collect_sources

    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "b.mkv").write_bytes(b"x")
    (tmp_path / "list.csv").write_text("path,source_kind\na.mp4,talking_head\nb.mkv,\n")
    got = collect_sources([str(tmp_path / "list.csv")], "film_related", [".mp4"])
    assert [(p.rsplit("/", 1)[1], k) for p, k in ((g["path"], g["source_kind"]) for g in got)] == \
        [("a.mp4", "talking_head"), ("b.mkv", "film_related")]
    (tmp_path / "bad.csv").write_text("file\na.mp4\n")
    try:
        collect_sources([str(tmp_path / "bad.csv")], "cinematic", [".mp4"])
    except InputError as exc:
        assert "needs a column 'path'" in str(exc)
    else:
        raise AssertionError("expected InputError")
