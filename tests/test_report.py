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
