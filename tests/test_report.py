"""demix report: a self-contained HTML file, rendered in headless Chromium (Debian's `chromium`)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from demix_pipeline.config import load_config
from demix_pipeline.report import build_report
from demix_pipeline.runner import run_stage
from tests.pipeline_helpers import LATE_STAGES_FAST


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("Debian's chromium is missing (make test installs it: apt-get install chromium)")
    pytest.skip("chromium not installed")


def test_report_is_self_contained_and_renders_in_chromium(late_stages_run, tmp_path):
    run = late_stages_run["out"]
    run_stage("assign", load_config(overrides=["run.progress=false", *LATE_STAGES_FAST, "assign.test_size=0.25"]), run)
    page = build_report(run, tmp_path / "report.html")
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text) and "<script" not in text  # nothing to fetch
    assert text.count("data:image/jpeg;base64,") >= 4  # thumbnails are inlined
    result = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                             "--v=0", "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    funnel = re.search(r'<table id="funnel">.*?</table>', dom, re.S).group(0)
    for stage in ("00_ingest", "01_shots", "02_audio_quality", "03_demix", "04_voiceover", "05_caption", "06_assign"):
        assert f"<td>{stage}</td>" in funnel
    subsets = re.search(r'<table id="subsets">.*?</table>', dom, re.S).group(0)
    for name in ("basic_face", "single_character", "multiple_characters", "sound_event", "visual_mood", "distinct clips"):
        assert f"<td>{name}</td>" in subsets
    assert "<svg" in dom and 'id="backends"' in dom and "offline" in dom
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []


def test_unset_reference_floors_are_announced_at_start_and_shown_with_the_command(tmp_path):
    """A reference tier whose floors are null removes no clip: the run says so first, the report shows the scores."""
    import json
    import subprocess
    import sys

    from demix_pipeline.config import load_config
    from demix_pipeline.manifest import stage_dir, to_table, write_atomic
    from demix_pipeline.report import build_report

    store = tmp_path / "store"
    (store / "audiobox-aesthetics").mkdir(parents=True)
    (store / "audiobox-aesthetics" / "checkpoint.pt").write_bytes(b"weights")
    run = subprocess.run([sys.executable, "-m", "demix_pipeline.cli", "run", "--out", str(tmp_path / "run"),
                          "--stages", "audio_quality", "--set", "audio_quality.backend=reference",
                          "--set", f"run.models_dir={store}"], capture_output=True, text=True, timeout=300)
    assert "warning: audio_quality: audio_quality.min_aes_ce, audio_quality.min_aes_cu" in run.stderr
    assert "demix decide audio_quality --set audio_quality.min_aes_ce=VALUE" in run.stderr
    offline = subprocess.run([sys.executable, "-m", "demix_pipeline.cli", "run", "--out", str(tmp_path / "run2"),
                              "--stages", "audio_quality"], capture_output=True, text=True, timeout=300)
    assert "warning" not in offline.stderr  # the offline tier has every threshold it reads

    out = tmp_path / "report-run"
    folder = stage_dir(out, "audio_quality")
    rows = [{"clip_id": f"c{i}", "source_id": "s", "source_kind": "cinematic", "keep": True, "drop_reason": None,
             "error": None, "audio_quality.aes_pq": pq, "audio_quality.aes_ce": pq - 1} for i, pq in enumerate((4.0, 6.5, 7.5))]
    write_atomic(to_table("audio_quality", rows), folder / "part-00000.parquet")
    config = load_config(overrides=["audio_quality.backend=reference", "audio_quality.min_aes_pq=5.0"]).audio_quality
    (folder / "_stage.json").write_text(json.dumps({"stage": "audio_quality", "config": config.model_dump(mode="json")}))
    (folder / "_SUCCESS").write_text("")
    page = build_report(out).read_text()
    assert "Thresholds to set: audio_quality" in page
    assert "--set audio_quality.min_aes_ce=VALUE" in page and "min_aes_pq=VALUE" not in page  # pq is set
    assert "audio_quality.aes_ce: n=3" in page
