"""Run ingest + shots in-process (on the test session's Ray) and read the results back."""
from __future__ import annotations

from pathlib import Path

from demix_pipeline.config import load_config
from demix_pipeline.manifest import read_stage
from demix_pipeline.runner import run_stage
from demix_pipeline.stages.ingest import collect_sources


def run_pipeline(inputs: list[Path], out: Path, overrides: list[str] | None = None, kind: str = "cinematic"):
    cfg = load_config(overrides=["run.progress=false", *(overrides or [])])
    sources = collect_sources([str(p) for p in inputs], kind, cfg.ingest.extensions)
    run_stage("ingest", cfg, out, sources=sources)
    run_stage("shots", cfg, out)
    return read_stage(out, "ingest").to_pylist(), read_stage(out, "shots").to_pylist()
