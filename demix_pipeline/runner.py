"""Runs one stage over a manifest on Ray: shards, resume, per-row errors, decide, `_SUCCESS` last.

Resume: `_measure.json` records a fingerprint of everything that shapes the measurements (stage
version, measure config, input). Finished shards (`part-*.parquet`, written atomically) are kept
when it matches and redone otherwise; unfinished shards are redone. After all shards, decide()
runs on the driver over every row and rewrites the parts, so the final manifest equals that of an
uninterrupted run. A finished stage whose decide config changed is only re-decided.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from demix_pipeline import __version__
from demix_pipeline.config import STAGE_ORDER, PipelineConfig
from demix_pipeline.manifest import (part_files, part_name, read_part, schema, stage_dir, to_table,
                                     write_atomic, write_json_atomic)
from demix_pipeline.models import check_models
from demix_pipeline.stages import IMPLEMENTED, RunContext, Stage, stage_class
from demix_pipeline.storage import RunPath, ensure_dir, remove_file, remove_tree, run_root

log = logging.getLogger("demix.runner")


class StageFailed(RuntimeError):
    """A stage could not finish: too many row errors, or its input is missing."""


@dataclass
class StageSummary:
    stage: str
    status: str  # ran, resumed, decided, up-to-date
    rows_in: int = 0
    rows_out: int = 0
    kept: int = 0
    errors: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_version() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def previous_stage(name: str) -> str | None:
    earlier = [s for s in STAGE_ORDER[: STAGE_ORDER.index(name)] if s in IMPLEMENTED]
    return earlier[-1] if earlier else None


def ensure_ray(cfg: PipelineConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    address = cfg.run.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(num_cpus=cfg.run.num_cpus, object_store_memory=cfg.run.object_store_mb * 1024 * 1024,
                 include_dashboard=False, log_to_driver=True, configure_logging=False)


# ----------------------------------------------------------------------------------------------
# inputs

def stage_input(name: str, out: RunPath, sources: list[dict] | None) -> tuple[list[dict], str, set[str]]:
    """(rows, input fingerprint, ids of rows that pass through unprocessed)."""
    if name == "ingest":
        if sources is None:
            raise StageFailed("stage ingest needs --input")
        rows = sorted(sources, key=lambda r: r["path"])
        stamp = []
        for r in rows:
            try:
                st = os.stat(r["path"])
                stamp.append((r["path"], r["source_kind"], st.st_size, st.st_mtime_ns))
            except OSError:
                stamp.append((r["path"], r["source_kind"], None, None))
        return rows, _hash(stamp), set()
    prev = previous_stage(name)
    folder = stage_dir(out, prev)
    if not (folder / "_SUCCESS").exists():
        raise StageFailed(f"stage {name} needs stage {prev} to have finished in {out} (no {folder / '_SUCCESS'})")
    info = json.loads((folder / "_stage.json").read_text())
    table = pa.concat_tables([read_part(p, prev) for p in part_files(out, prev)]) if part_files(out, prev) else schema(prev).empty_table()
    id_col = stage_class(prev).id_column
    rows = sorted(table.to_pylist(), key=lambda r: r[id_col])
    if stage_class(name).fan_out:
        rows = [r for r in rows if r["keep"]]
        passthrough = set()
    else:
        passthrough = {r[id_col] for r in rows if not r["keep"]}
    return rows, info["output_fingerprint"], passthrough


# ----------------------------------------------------------------------------------------------
# workers

class _Worker:
    """Holds one stage instance (setup() once) and turns shards of input rows into part files."""

    def __init__(self, stage_cls: type[Stage], config_json: str, ctx: RunContext):
        self.stage = stage_cls(PipelineConfig.model_validate_json(config_json), ctx)
        self.stage.setup()

    def measure(self, rows: list[dict], passthrough: set[str], batch_size: int) -> list[dict]:
        """Measure rows; rows the previous stage dropped pass through unmeasured."""
        stage = self.stage
        names = set(schema(stage.name).names)
        id_col = stage.id_column
        out_rows = [{k: v for k, v in r.items() if k in names} for r in rows if r.get(id_col) in passthrough]
        todo = [r for r in rows if r.get(id_col) not in passthrough]
        for i in range(0, len(todo), batch_size):
            batch = todo[i:i + batch_size]
            try:
                out_rows.extend(stage.measure(batch))
            except Exception as exc:
                if len(batch) == 1:
                    out_rows.extend(stage.error_rows(batch[0], exc))
                    continue
                for row in batch:  # isolate the failing row
                    try:
                        out_rows.extend(stage.measure([row]))
                    except Exception as row_exc:
                        out_rows.extend(stage.error_rows(row, row_exc))
        return out_rows

    def run(self, shard: int, rows: list[dict], passthrough: set[str], batch_size: int) -> dict:
        out_rows = self.measure(rows, passthrough, batch_size)
        stage = self.stage
        write_atomic(to_table(stage.name, out_rows, stage.backends()), stage_dir(stage.ctx.out, stage.name) / part_name(shard))
        return {"shard": shard, "rows_in": len(rows), "rows_out": len(out_rows), "node": _node_id()}


def _node_id() -> str:
    """The Ray node this worker runs on (recorded per shard, so a run shows where its work went)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def _run_shard_task(stage_cls, config_json, ctx, shard, rows, passthrough, batch_size):
    return _Worker(stage_cls, config_json, ctx).run(shard, rows, passthrough, batch_size)


def _measure_rows_task(stage_cls, config_json, ctx, rows, passthrough, batch_size):
    return _Worker(stage_cls, config_json, ctx).measure(rows, passthrough, batch_size)


def _isolate(stage_cls, cfg, ctx, shard, rows, measure_one) -> None:
    """Measure a crashed shard one row at a time; a row that kills its worker becomes an error row.

    Sequential on purpose: crashes are rare, and the pool's own workers (CPU slots or actors with
    a loaded model) are used, so no extra resources are needed.
    """
    import ray

    stage = stage_cls(cfg, ctx)
    out_rows: list[dict] = []
    for row in rows:
        try:
            out_rows.extend(measure_one(row))
        except ray.exceptions.RayError as exc:
            out_rows.extend(stage.error_rows(row, WorkerCrashed(f"the worker died on this row ({type(exc).__name__})")))
    write_atomic(to_table(stage.name, out_rows, stage.backends()), stage_dir(ctx.out, stage.name) / part_name(shard))


class WorkerCrashed(RuntimeError):
    """A row's measurement killed its worker process."""


def _execute(stage_cls, cfg: PipelineConfig, ctx: RunContext, shards: list[tuple[int, list[dict]]],
             passthrough: set[str], progress: bool) -> dict[str, str]:
    """Measure the shards on Ray; returns the node id that wrote each shard."""
    import ray
    from tqdm import tqdm

    res = cfg.stage(stage_cls.name).resources
    config_json = cfg.model_dump_json()
    bar = tqdm(total=sum(len(rows) for _, rows in shards), unit="row", desc=stage_cls.name,
               disable=not progress or None, dynamic_ncols=True)
    try:
        options = {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus}
        if stage_cls.uses_model:  # a pool of actors: the model is loaded once per actor
            actor_cls = ray.remote(**options)(_Worker)
            idle = [actor_cls.remote(stage_cls, config_json, ctx) for _ in range(res.concurrency)]
        else:  # CPU-only stage: plain tasks
            task = ray.remote(max_retries=1, **options)(_run_shard_task)
            idle = [None] * res.concurrency
        pending: dict = {}
        nodes: dict[str, str] = {}
        queue = list(shards)
        while queue or pending:
            while queue and idle:
                shard, rows = queue.pop(0)
                actor = idle.pop()
                ref = (actor.run.remote(shard, rows, passthrough, res.batch_size) if actor is not None
                       else task.remote(stage_cls, config_json, ctx, shard, rows, passthrough, res.batch_size))
                pending[ref] = (shard, rows, actor)
            done, _ = ray.wait(list(pending), num_returns=1)
            shard, rows, actor = pending.pop(done[0])
            try:
                result = ray.get(done[0])
                bar.update(result["rows_in"])
                nodes[str(shard)] = result["node"]
            except ray.exceptions.RayError as exc:  # the worker process died (crash in native code, OOM kill)
                log.warning("%s: shard %d crashed its worker (%s); isolating its rows", stage_cls.name, shard,
                            type(exc).__name__)
                if actor is None:
                    one = ray.remote(max_retries=0, **options)(_measure_rows_task)

                    def measure_one(row):
                        return ray.get(one.remote(stage_cls, config_json, ctx, [row], passthrough, 1))
                else:
                    holder = [actor_cls.remote(stage_cls, config_json, ctx)]

                    def measure_one(row):
                        try:
                            return ray.get(holder[0].measure.remote([row], passthrough, 1))
                        except ray.exceptions.RayError:
                            holder[0] = actor_cls.remote(stage_cls, config_json, ctx)
                            raise

                _isolate(stage_cls, cfg, ctx, shard, rows, measure_one)
                nodes[str(shard)] = _node_id()  # isolated rows were written from the driver
                actor = None if actor is None else holder[0]
                bar.update(len(rows))
            idle.append(actor)
    finally:
        bar.close()
    return nodes


# ----------------------------------------------------------------------------------------------
# stage driver

def run_stage(name: str, cfg: PipelineConfig, out: str | RunPath, sources: list[dict] | None = None,
              progress: bool | None = None) -> StageSummary:
    out = run_root(out)
    started = time.time()
    stage_cls = stage_class(name)
    folder = stage_dir(out, name)
    rows, input_fp, passthrough = stage_input(name, out, sources)
    stage_cfg = cfg.stage(name)
    shard_size = stage_cfg.resources.shard_size  # part files map to row ranges: a new size means new parts
    measure_fp = _hash({"stage": name, "version": stage_cls.version, "config": stage_cfg.measure_dict(),
                        "input": input_fp, "shard_size": shard_size})
    decide_fp = cfg.fingerprint(name, "decide")
    shards = [(i // shard_size, rows[i:i + shard_size]) for i in range(0, len(rows), shard_size)]

    marker = folder / "_measure.json"
    previous = json.loads(marker.read_text()) if marker.exists() else None
    artifacts_fp = stage_cls.artifacts_fingerprint(cfg)
    if previous and previous.get("measure_fingerprint") != measure_fp:
        log.warning("%s: config or input changed since the stored run; redoing the stage", name)
        remove_tree(folder)
        if previous.get("artifacts_fingerprint") != artifacts_fp:
            log.warning("%s: artifact settings changed; removing its artifacts so they are made anew", name)
            stage_cls.clear_artifacts(out)
        previous = None
    if previous and (folder / "_SUCCESS").exists():
        stored = json.loads((folder / "_stage.json").read_text())
        if stored.get("decide_fingerprint") == decide_fp:
            return _summary_from(stored, "up-to-date")
        return apply_decide(name, cfg, out)
    check_models(stage_cls.required_models(cfg), cfg.run.models_dir)  # a missing model fails before any work
    ensure_dir(folder)
    remove_file(folder / "_SUCCESS")
    write_json_atomic({"measure_fingerprint": measure_fp, "artifacts_fingerprint": artifacts_fp,
                       "input_fingerprint": input_fp, "shards": len(shards),
                       "rows_in": len(rows), "shard_size": shard_size}, marker)
    done = {int(p.stem.split("-")[1]) for p in part_files(out, name)}
    todo = [(i, r) for i, r in shards if i not in done]
    status = "resumed" if done and todo else "ran"
    ctx = RunContext(out=out, models_dir=cfg.run.models_dir)
    measure_started = time.time()
    shard_nodes: dict[str, str] = {}
    if todo:
        ensure_ray(cfg)
        shard_nodes = _execute(stage_cls, cfg, ctx, todo, passthrough, cfg.run.progress if progress is None else progress)
    measure_s = time.time() - measure_started
    summary = _decide_and_finish(name, cfg, out, stage_cls, ctx, passthrough,
                                 {"measure_fingerprint": measure_fp, "input_fingerprint": input_fp,
                                  "rows_in": len(rows), "shards": len(shards), "measure_s": measure_s,
                                  "started": started, "shard_nodes": shard_nodes})
    summary.status = status
    return summary


def apply_decide(name: str, cfg: PipelineConfig, out: str | RunPath) -> StageSummary:
    """Re-apply decide() with the current config to the stored measurements: no decoding, no model."""
    out = run_root(out)
    folder = stage_dir(out, name)
    stage_json = folder / "_stage.json"
    if not stage_json.exists():
        raise StageFailed(f"stage {name} has no finished measurements in {out}; run it first")
    stored = json.loads(stage_json.read_text())
    _, _, passthrough = stage_input(name, out, None) if name != "ingest" else ([], "", set())
    remove_file(folder / "_SUCCESS")
    stage_cls = stage_class(name)
    ctx = RunContext(out=out, models_dir=cfg.run.models_dir)
    keys = ("measure_fingerprint", "input_fingerprint", "rows_in", "shards", "measure_s", "started", "shard_nodes")
    summary = _decide_and_finish(name, cfg, out, stage_cls, ctx, passthrough, {k: stored.get(k) for k in keys})
    summary.status = "decided"
    return summary


def _decide_and_finish(name, cfg, out, stage_cls, ctx, passthrough, info: dict) -> StageSummary:
    folder = stage_dir(out, name)
    decide_started = time.time()
    stage = stage_cls(cfg, ctx)  # no setup(): decide needs no model
    by_part: dict[RunPath, list[dict]] = {}
    for path in part_files(out, name):
        by_part[path] = read_part(path, name).to_pylist()
    id_col = stage_cls.id_column
    measured = [dict(r, _part=str(p)) for p, rows in by_part.items() for r in rows if r[id_col] not in passthrough]
    decided = stage.decide(measured)
    new_rows: dict[str, list[dict]] = {str(p): [r for r in rows if r[id_col] in passthrough] for p, rows in by_part.items()}
    for row in decided:
        new_rows[row.pop("_part")].append(row)
    backends = stage.backends()
    upstream = _upstream_backends(out, name)
    all_rows = []
    for path in by_part:
        rows = sorted(new_rows[str(path)], key=lambda r: r[id_col])
        write_atomic(to_table(name, rows, {**upstream, **backends}), path)
        all_rows.extend(rows)
    errors = sum(1 for r in all_rows if r["error"] is not None)
    dropped: dict[str, int] = {}
    for r in all_rows:
        if not r["keep"] and r[id_col] not in passthrough:
            dropped[r["drop_reason"] or "unknown"] = dropped.get(r["drop_reason"] or "unknown", 0) + 1
    kept = sum(1 for r in all_rows if r["keep"])
    decide_fp = cfg.fingerprint(name, "decide")
    record = {
        "stage": name, "stage_version": stage_cls.version, "code_version": code_version(),
        "backends": backends, "config": cfg.stage(name).model_dump(mode="json"),
        "decide_fingerprint": decide_fp,
        "output_fingerprint": _hash([info["measure_fingerprint"], decide_fp]),
        "rows_out": len(all_rows), "kept": kept, "errors": errors, "dropped_by_reason": dict(sorted(dropped.items())),
        "hours_out": _hours(all_rows, name, kept_only=False), "hours_kept": _hours(all_rows, name), "decide_s": time.time() - decide_started,
        "finished": time.time(), **info,
    }
    rows_measured = max(1, len(all_rows) - len(passthrough))
    max_rate = cfg.stage(name).max_error_rate
    write_json_atomic(record, folder / "_stage.json")
    if errors / rows_measured > max_rate:
        raise StageFailed(f"stage {name}: {errors} of {rows_measured} rows failed, over max_error_rate "
                          f"{max_rate}; see the `error` column in {folder}")
    (folder / "_SUCCESS").write_text("")
    return _summary_from(record, "ran")


def _hours(rows: list[dict], name: str, kept_only: bool = True) -> float:
    col = "duration_s" if name == "ingest" else "shots.duration_s"
    return sum((r.get(col) or 0.0) for r in rows if r["keep"] or not kept_only) / 3600.0


def _upstream_backends(out: RunPath, name: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for stage in STAGE_ORDER[: STAGE_ORDER.index(name)]:
        path = stage_dir(out, stage) / "_stage.json"
        if path.exists():
            merged.update(json.loads(path.read_text()).get("backends", {}))
    return merged


def _summary_from(record: dict, status: str) -> StageSummary:
    return StageSummary(stage=record["stage"], status=status, rows_in=record.get("rows_in") or 0,
                        rows_out=record["rows_out"], kept=record["kept"], errors=record["errors"],
                        dropped=record["dropped_by_reason"], seconds=(record.get("finished") or 0) - (record.get("started") or 0))
