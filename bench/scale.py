"""Driver cost at corpus scale: each `demix decide`, `status`, `stats`, `report` and the export index over a run of --clips rows.

The run folder is built by replicating the manifests of a real run (every column as measured,
nested voiceover tracks and caption structures included) under new source and clip ids: either
--from RUN, or a run of the offline pipeline over the --seed-files smallest videos found in
--media. Each command runs in its own process; its wall time and peak RSS are what it cost the
driver. Goals (issue 12): every decide within 20 s, stats within 5 s, report within 30 s, peak RSS
under 1.5 GB.

    python bench/scale.py --clips 400000 [--media DIR | --from RUN] [--json FILE] [--keep DIR]
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

import pyarrow as pa
import pyarrow.compute as pc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _report import report  # noqa: E402

from demix_pipeline.config import STAGE_ORDER  # noqa: E402
from demix_pipeline.manifest import part_name, read_stage, stage_dir, write_atomic  # noqa: E402

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


def seed_run(media: Path, files: int, workdir: Path) -> Path:
    videos = sorted((p for p in media.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()),
                    key=lambda p: p.stat().st_size)[:files]
    if not videos:
        raise SystemExit(f"no videos found under {media}")
    out = workdir / "seed"
    cmd = [sys.executable, "-m", "demix_pipeline.cli", "run", "--input", *map(str, videos), "--out", str(out),
           "--set", "run.progress=false", "--set", "shots.encode.preset=ultrafast", "--set", "assign.test_size=0.2"]
    print(f"seed run over {len(videos)} videos of {media} ...", file=sys.stderr)
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return out


def _tiled(table: pa.Table, copies: int, rows: int, id_columns: list[str]) -> pa.Table:
    """`rows` rows: the table repeated, each copy's source ids (and the clip ids that start with them) new."""
    import numpy as np

    indices = np.tile(np.arange(table.num_rows), copies)[:rows]
    copy_number = np.repeat(np.arange(copies), table.num_rows)[:rows]
    tiled = table.take(pa.array(indices))
    prefixes = pa.array([f"{c:07x}" for c in copy_number], pa.string())
    for name in id_columns:
        index = tiled.schema.get_field_index(name)
        values = pc.binary_join_element_wise(prefixes, pc.utf8_slice_codeunits(tiled.column(name), 7), "")
        tiled = tiled.set_column(index, tiled.schema.field(index), values)
    return tiled


def replicate(seed: Path, clips: int, out: Path, part_rows: int) -> dict:
    """Every finished stage of `seed`, its clip rows repeated (with new ids) to `clips` rows."""
    shots_rows = read_stage(seed, "shots").num_rows
    copies = math.ceil(clips / max(1, shots_rows))
    counts = {}
    for name in STAGE_ORDER:
        folder = stage_dir(seed, name)
        if not (folder / "_SUCCESS").exists():
            continue
        table = read_stage(seed, name)
        ids = ["source_id"] if name == "ingest" else ["source_id", "clip_id"]
        rows = table.num_rows * copies if name == "ingest" else clips
        tiled = _tiled(table, copies, rows, ids).sort_by(ids[-1])
        target = stage_dir(out, name)
        target.mkdir(parents=True, exist_ok=True)
        for number, start in enumerate(range(0, tiled.num_rows, part_rows)):
            write_atomic(tiled.slice(start, part_rows), target / part_name(number))
        record = json.loads((folder / "_stage.json").read_text())
        record.update(rows_out=tiled.num_rows, rows_in=tiled.num_rows)
        (target / "_stage.json").write_text(json.dumps(record))
        (target / "_SUCCESS").write_text("")
        counts[name] = tiled.num_rows
        del tiled
    return counts


def timed(args: list[str]) -> dict:
    """Wall time and peak RSS of one CLI command in its own process (RSS polled every 20 ms: ru_maxrss of a
    forked child starts at the parent's size, so it cannot be used here)."""
    import psutil

    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "demix_pipeline.cli", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watched, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.02)
    stderr = proc.communicate()[1]
    seconds = time.time() - started
    if proc.returncode != 0:
        print(f"  {' '.join(args[:2])} failed: {stderr[-800:]}", file=sys.stderr)
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak / 2**20, 1), "rc": proc.returncode}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=400_000)
    parser.add_argument("--media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--from", dest="seed", type=Path, help="replicate this finished run instead of making one")
    parser.add_argument("--seed-files", type=int, default=4)
    parser.add_argument("--part-rows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="build the run folder here and keep it")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="demix-scale-") as tmp:
        workdir = Path(tmp)
        seed = args.seed or seed_run(args.media, args.seed_files, workdir)
        run = args.keep or workdir / "run"
        started = time.time()
        counts = replicate(seed, args.clips, run, args.part_rows)
        print(f"built {run}: {counts} in {time.time() - started:.0f} s", file=sys.stderr)
        figures: dict = {"scale.clips": counts.get("shots", 0), "scale.sources": counts.get("ingest", 0)}
        commands = [(f"decide_{name}", ["decide", name, "--out", str(run)]) for name in STAGE_ORDER if name in counts]
        commands += [("status", ["status", "--out", str(run)]), ("stats", ["stats", "--out", str(run)]),
                     ("report", ["report", "--out", str(run), "--dest", str(workdir / "report.html")]),
                     ("export_index", ["export", "--out", str(run), "--dest", str(workdir / "export"), "--index-only"])]
        print(f"{'command':<24}{'seconds':>10}{'peak RSS MB':>14}")
        for label, command in commands:
            result = timed(command)
            figures[f"scale.{label}_s"] = result["seconds"]
            figures[f"scale.{label}_peak_rss_mb"] = result["peak_rss_mb"]
            figures[f"scale.{label}_ok"] = result["rc"] == 0
            print(f"{label:<24}{result['seconds']:>10.1f}{result['peak_rss_mb']:>14.0f}{'' if result['rc'] == 0 else '  FAILED'}")
        report([f"figures ({Path(__file__).name}):"], figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
