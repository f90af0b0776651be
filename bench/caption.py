"""Benchmark stage caption: clips per second of each captioner, and peak memory.

Runs ingest .. voiceover on a few real clips of a media folder (once, in a temporary folder), then
times the caption stage's measure step in batches of its batch_size, single process: the offline template, and the
reference video-LLM path with a tiny random LLaVA-OneVision built on the spot (plumbing cost: the
real models are ~100-1000x larger), or with the model in `--models <store>/video_llm` when given.
On a GPU machine add `--device cuda` (bf16).

    python bench/caption.py [--media DIR] [--json FILE] [--models DIR] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.backends.tiny_models

from _report import report

from demix_pipeline.config import load_config
from demix_pipeline.manifest import read_stage
from demix_pipeline.runner import run_stage
from demix_pipeline.stages.base import RunContext
from demix_pipeline.stages.caption import CaptionStage
from demix_pipeline.stages.ingest import collect_sources

DEFAULT_MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"
FILES = ["talking_head_single/videoretalking_face_1.mp4", "talking_head_single/videoretalking_face_2.mp4",
         "multi_person_dialogue/datajuicer_video3_two_women_talk_vertical.mp4", "music/difffoley_drum.mp4"]


def clips_per_second(stage: CaptionStage, rows: list[dict]) -> tuple[float, float]:
    """Measured in batches of the stage's resources.batch_size, as the runner hands them over."""
    batch = stage.cfg.resources.batch_size
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        stage.measure([dict(row) for row in rows[i:i + batch]])
    wall = time.perf_counter() - start
    return len(rows) / wall, sum(r["end_s"] - r["start_s"] for r in rows) / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--models", type=Path, help="model store holding video_llm/ (else a tiny random model)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="demix-bench-caption-"))
    try:
        inputs = work / "inputs"
        inputs.mkdir()
        for name in FILES:
            shutil.copy(args.media / name, inputs / Path(name).name)
        base = ["run.progress=false", "shots.encode.preset=ultrafast"]
        cfg = load_config(overrides=base)
        out = work / "run"
        run_stage("ingest", cfg, out, sources=collect_sources([str(inputs)], "cinematic", cfg.ingest.extensions))
        for stage in ("shots", "audio_quality", "demix", "voiceover"):
            run_stage(stage, cfg, out)
        rows = [r for r in read_stage(out, "voiceover").to_pylist() if r["keep"]]
        figures: dict = {"caption.clips": len(rows)}
        offline = CaptionStage(cfg, RunContext(out))
        offline.setup()
        per_clip, realtime = clips_per_second(offline, rows)
        figures["caption.offline.clips_per_s"] = round(per_clip, 2)
        figures["caption.offline.realtime"] = round(realtime, 1)
        store = args.models
        if store is None:
            from tests.backends.tiny_models import build_tiny_llava_onevision

            store = work / "models"
            build_tiny_llava_onevision(store / "video_llm")
        gpus = 1 if args.device == "cuda" else 0
        ref_cfg = load_config(overrides=[*base, "caption.backend=reference", f"run.models_dir={store}",
                                         f"caption.resources.num_gpus={gpus}"])
        reference = CaptionStage(ref_cfg, RunContext(out, models_dir=str(store)))
        reference.setup()
        per_clip, realtime = clips_per_second(reference, rows)
        kind = "model store" if args.models else "tiny random LLaVA-OneVision"
        figures[f"caption.reference.{args.device}.clips_per_s"] = round(per_clip, 2)
        figures[f"caption.reference.{args.device}.realtime"] = round(realtime, 1)
        figures["caption.peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if args.device == "cuda":
            import torch

            figures["caption.peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        report([f"caption benchmark: {len(rows)} clips from {args.media}, single process; reference = {kind}"],
               figures, args.json)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
