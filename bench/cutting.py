"""Clip cutting of one long source: one ffmpeg after another vs as many at once as the stage's CPUs.

    python bench/cutting.py [--media DIR] [--json FILE] [--minutes 3] [--cpus 2]

Builds one long source by joining the mp4 videos found under --media (re-encoded to one size and
rate, repeated until --minutes), detects its shots once with our cheap detector, then cuts every
planned piece with `shots.resources.num_cpus=1` and with `--cpus`. Figures: realtime factor of each
(source seconds over cutting wall seconds) and their ratio. The detector and the plan are the same
for both runs, so only the cutting differs.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _report import report  # noqa: E402

from demix_pipeline.config import load_config  # noqa: E402
from demix_pipeline.media.ffmpeg import ffmpeg_binary  # noqa: E402
from demix_pipeline.stages.base import RunContext  # noqa: E402
from demix_pipeline.stages.ingest import IngestStage  # noqa: E402
from demix_pipeline.stages.shots import ShotsStage  # noqa: E402


def long_source(media: Path, dest: Path, minutes: float) -> Path:
    import subprocess

    videos = sorted(p for p in media.rglob("*.mp4") if p.is_file())
    if not videos:
        raise SystemExit(f"no mp4 under {media}")
    parts = []
    for i, video in enumerate(videos):  # one size, rate and audio layout, so the parts join without re-timing
        part = dest.parent / f"part{i:03d}.mp4"
        proc = subprocess.run([ffmpeg_binary("auto"), "-v", "error", "-y", "-i", str(video), "-f", "lavfi", "-i",
                               "anullsrc=r=48000:cl=stereo", "-map", "0:v:0", "-map", "0:a:0?", "-map", "1:a",
                               "-shortest", "-vf", "scale=640:360,setsar=1,fps=25", "-c:v", "libx264", "-preset",
                               "ultrafast", "-c:a", "aac", "-ar", "48000", "-ac", "2", str(part)], capture_output=True)
        if proc.returncode == 0:
            parts.append(part)
    listing = dest.parent / "parts.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    once = dest.parent / "once.mp4"
    subprocess.run([ffmpeg_binary("auto"), "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                    "-c", "copy", str(once)], check=True)
    subprocess.run([ffmpeg_binary("auto"), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(once), "-t",
                    str(minutes * 60), "-c", "copy", str(dest)], check=True)
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="demix-cutting-bench-") as tmp:
        work = Path(tmp)
        source_path = long_source(args.media, work / "long.mp4", args.minutes)
        base = ["shots.detector.name=demix"]
        ingest = IngestStage(load_config(overrides=base), RunContext(out=work / "probe"))
        source = ingest.measure([{"path": str(source_path), "source_kind": "cinematic"}])[0]
        seconds = source["duration_s"]
        figures["cutting.source_s"] = round(seconds, 1)
        stage = ShotsStage(load_config(overrides=base), RunContext(out=work / "plan"))
        stage.setup()
        planned = []
        stage._cut_all = lambda _source, items: planned.extend(items) or []  # plan only: same pieces for both runs
        stage._measure_source(source)
        figures["cutting.pieces"] = sum(span is not None for _, span in planned)
        for cpus in (1, args.cpus):
            runner = ShotsStage(load_config(overrides=[*base, f"shots.resources.num_cpus={cpus}"]),
                                RunContext(out=work / f"cut{cpus}"))
            runner.setup()
            started = time.time()
            rows = runner._cut_all(source, planned)
            wall = time.time() - started
            failed = sum(1 for row in rows if row["error"])
            figures[f"cutting.cpus{cpus}.wall_s"] = round(wall, 1)
            figures[f"cutting.cpus{cpus}.realtime_factor"] = round(seconds / wall, 2)
            figures[f"cutting.cpus{cpus}.failed"] = failed
        figures["cutting.speedup"] = round(figures[f"cutting.cpus{args.cpus}.realtime_factor"]
                                           / figures["cutting.cpus1.realtime_factor"], 2)
    report([f"cutting one {args.minutes:g}-minute source ({Path(__file__).name}):"], figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
