"""The whole offline pipeline through the runner: realtime factor, stage overlap, and what growing a run costs.

    python bench/pipeline.py [--media DIR] [--json FILE] [--grow] [--grow-fraction 0.8]

Runs `demix run` (every stage, offline backends) over the videos found under --media, as a user
would. Figures:
- realtime factor: seconds of source video ingested over the run's wall seconds;
- stage overlap: the sum of each stage's busy time (its _stage.json `started` to `finished`, which
  begins with the stage's first streamed batch) over the run's wall time; 1.0 means the stages ran
  one after another;
- CPU busy fraction: how much of the machine's CPU time the run kept busy (1.0: every core all the
  time; then only less work, not more overlap, makes the run faster);
- with --grow: a first run over the first --grow-fraction of the videos (sorted by path), then the
  same command over all of them: rows each stage measured and reused in the second run, and its wall
  time next to the first run's.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _report import report  # noqa: E402

from demix_pipeline.config import STAGE_ORDER  # noqa: E402
from demix_pipeline.manifest import stage_dir  # noqa: E402

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


def cpu_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat through psutil."""
    import psutil

    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = sum(times)
    return total - idle, total


def run(inputs: list[Path], out: Path, extra: list[str]) -> float:
    listing = out.parent / f"{out.name}-inputs.csv"
    listing.write_text("path,source_kind\n" + "".join(f"{p},cinematic\n" for p in inputs))
    cmd = [sys.executable, "-m", "demix_pipeline.cli", "run", "--input", str(listing), "--out", str(out),
           "--set", "run.progress=false", *extra]
    started = time.time()
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - started


def records(out: Path) -> dict[str, dict]:
    found = {}
    for name in STAGE_ORDER:
        path = stage_dir(out, name) / "_stage.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return found


def source_seconds(out: Path) -> float:
    import pyarrow.compute as pc

    from demix_pipeline.manifest import read_stage

    return pc.sum(pc.fill_null(read_stage(out, "ingest").column("duration_s"), 0.0)).as_py() or 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--grow", action="store_true")
    parser.add_argument("--grow-fraction", type=float, default=0.8)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to demix run")
    args = parser.parse_args()
    videos = sorted(p.resolve() for p in args.media.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not videos:
        raise SystemExit(f"no videos under {args.media}")
    extra = [item for pair in args.set for item in ("--set", pair)]
    figures: dict = {"pipeline.videos": len(videos)}
    with tempfile.TemporaryDirectory(prefix="demix-pipeline-bench-") as tmp:
        workdir = Path(tmp)
        out = workdir / "run"
        busy_before, total_before = cpu_busy()
        wall = run(videos, out, extra)
        busy_after, total_after = cpu_busy()
        figures["pipeline.cpu_busy_fraction"] = round((busy_after - busy_before) / max(1e-9, total_after - total_before), 3)
        seconds = source_seconds(out)
        found = records(out)
        busy = sum((r.get("finished") or 0) - (r.get("started") or 0) for r in found.values())
        figures.update({"pipeline.source_s": round(seconds, 1), "pipeline.wall_s": round(wall, 1),
                        "pipeline.realtime_factor": round(seconds / wall, 2), "pipeline.stage_overlap": round(busy / wall, 2)})
        print(f"whole pipeline over {len(videos)} videos ({seconds:.0f} s of video): {wall:.0f} s wall, "
              f"{seconds / wall:.2f}x realtime, stage overlap {busy / wall:.2f}")
        for name, record in found.items():
            figures[f"pipeline.{name}.busy_s"] = round((record.get("finished") or 0) - (record.get("started") or 0), 1)
        if args.grow:
            first_count = max(1, math.floor(len(videos) * args.grow_fraction))
            grown = workdir / "grown"
            first_wall = run(videos[:first_count], grown, extra)
            second_wall = run(videos, grown, extra)
            figures.update({"pipeline.grow.first_videos": first_count, "pipeline.grow.first_wall_s": round(first_wall, 1),
                            "pipeline.grow.second_wall_s": round(second_wall, 1)})
            print(f"grow: {first_count} videos in {first_wall:.0f} s, then all {len(videos)} in {second_wall:.0f} s")
            print(f"{'stage':<16}{'measured':>10}{'reused':>10}{'retried':>10}{'fresh run measured':>20}")
            fresh = records(out)
            for name, record in records(grown).items():
                figures[f"pipeline.grow.{name}.measured"] = record.get("measured")
                figures[f"pipeline.grow.{name}.reused"] = record.get("reused")
                print(f"{name:<16}{record.get('measured'):>10}{record.get('reused'):>10}{record.get('retried'):>10}"
                      f"{fresh.get(name, {}).get('measured', '-'):>20}")
        report([f"figures ({Path(__file__).name}):"], figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
