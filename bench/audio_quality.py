"""Benchmark stage audio_quality (offline backend) on clips cut from a media folder like ../shared/media.

Prints: realtime factor of the stage through the runner on this machine's cores (clip audio
seconds / measure wall time), a single-process breakdown (decode, VAD, DNSMOS, signal levels),
peak RSS, and the share of clips kept per media folder (music and sound_effects should keep all
clean clips; the digitally silent scenery clip should be dropped).

    python bench/audio_quality.py [--media DIR] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _report import report

from demix_pipeline.config import load_config
from demix_pipeline.manifest import read_stage, stage_dir
from demix_pipeline.media import levels
from demix_pipeline.media.audio import ClipAudio
from demix_pipeline.runner import run_stage
from demix_pipeline.stages.audio_quality import VAD_RATE, AudioQualityStage
from demix_pipeline.stages.base import RunContext
from demix_pipeline.stages.ingest import collect_sources

DEFAULT_MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"
FOLDERS = ["music", "sound_effects", "talking_head_single", "multi_person_dialogue", "scenery_no_people"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    overrides = ["run.progress=false", "shots.encode.preset=ultrafast"]
    cfg = load_config(overrides=overrides)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        inputs = [str(args.media / f) for f in FOLDERS if (args.media / f).is_dir()]
        run_stage("ingest", cfg, out, sources=collect_sources(inputs, "cinematic", cfg.ingest.extensions))
        run_stage("shots", cfg, out)
        clips = [r for r in read_stage(out, "shots").to_pylist() if r["keep"]]
        audio_s = sum(r["shots.duration_s"] for r in clips)
        run_stage("audio_quality", cfg, out)
        measure_s = json.loads((stage_dir(out, "audio_quality") / "_stage.json").read_text())["measure_s"]
        rows = read_stage(out, "audio_quality").to_pylist()
        uris = {r["source_id"]: r["source_uri"] for r in read_stage(out, "ingest").to_pylist()}

        stage = AudioQualityStage(cfg, RunContext(out=out))
        stage.setup()
        parts = {"decode": 0.0, "vad": 0.0, "dnsmos": 0.0, "levels": 0.0}
        for clip in clips:
            t = time.perf_counter()
            audio = ClipAudio.load(out / clip["clip_uri"])
            mono16 = audio.at(VAD_RATE)
            parts["decode"] += time.perf_counter() - t
            t = time.perf_counter()
            segments = stage.vad.segments(mono16)
            parts["vad"] += time.perf_counter() - t
            t = time.perf_counter()
            if sum(s.end_s - s.start_s for s in segments) >= cfg.audio_quality.min_speech_s:
                stage.dnsmos.score(np.concatenate([mono16[int(s.start_s * VAD_RATE):int(s.end_s * VAD_RATE)] for s in segments]))
            parts["dnsmos"] += time.perf_counter() - t
            t = time.perf_counter()
            mono = audio.at(audio.rate)
            levels.loudness_lufs(audio.samples, audio.rate)
            levels.bandwidth_hz(mono, audio.rate)
            levels.silence_ratio(mono, audio.rate)
            levels.rms_dbfs(audio.samples)
            parts["levels"] += time.perf_counter() - t

    kept: dict[str, list[bool]] = {}
    for row in rows:
        if row["audio_quality.rms_dbfs"] is None:
            continue
        folder = Path(uris[row["source_id"]]).parent.name
        kept.setdefault(folder, []).append(bool(row["keep"]))
    single = sum(parts.values())
    figures = {
        "audio_quality.clips": len(clips),
        "audio_quality.audio_seconds": round(audio_s, 1),
        "audio_quality.stage_realtime": round(audio_s / measure_s, 1),
        "audio_quality.single_process_realtime": round(audio_s / single, 1),
        **{f"audio_quality.seconds_{k}": round(v, 2) for k, v in parts.items()},
        **{f"audio_quality.kept_fraction_{k}": round(float(np.mean(v)), 3) for k, v in sorted(kept.items())},
        "audio_quality.peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    report([f"audio_quality (offline) on {len(clips)} clips, {audio_s:.1f} s of audio from {args.media}"], figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
