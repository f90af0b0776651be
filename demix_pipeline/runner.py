"""Runs one stage on Ray: measure only the rows with no stored measurement, then decide and write the view.

A stage keeps two things (DESIGN.md, "the stage contract"):
- its measurement store (`_measurements/`, measurements.py): measured rows by id and measure key,
  appended shard by shard as the workers finish and never rewritten;
- its view (`part-*.parquet`): every row the stage received, with keep/drop_reason/error, built
  from the current input and the store; then `_stage.json`, then `_SUCCESS`.

A run measures the input rows whose (id, measure key) has no usable measurement: new rows, rows
whose upstream measurement changed, rows that failed before (unless `run.keep_errors`). All else is
reused, so growing a run or re-thresholding a stage costs only the rows that are new to a stage. A
kill loses at most the shards in flight; the re-run measures those and builds the same view. A
failure of the machinery rather than of a row (setup() raising, a missing package or model, a part
that cannot be written, every row failing alike) stops the stage with the original message.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from demix_pipeline import __version__
from demix_pipeline.config import STAGE_ORDER, PipelineConfig
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from demix_pipeline.manifest import (column_stage, hours_column, part_files, part_name, read_columns, read_part,
                                     read_stage, schema, stage_dir, write_atomic, write_json_atomic)
from demix_pipeline.measurements import (TOKEN_SEP, MeasurementStore, measure_key_column, measured_backends,
                                         source_file_key, stage_fingerprint, token, token_column)
from demix_pipeline.row_deadline import row_time
from demix_pipeline.models import ModelNotFoundError, check_models
from demix_pipeline.stages import IMPLEMENTED, RowError, RunContext, Stage, stage_class
from demix_pipeline.stages.base import error_text
from demix_pipeline.storage import RunPath, ensure_dir, remove_file, run_root

log = logging.getLogger("demix.runner")

# exceptions that say the machinery is broken, not the row: they stop the stage at once
MACHINERY_ERRORS = (ImportError, ModelNotFoundError, NotImplementedError)


class StageFailed(RuntimeError):
    """A stage could not finish: too many row errors, a broken worker, or its input is missing."""


class WorkerCrashed(RuntimeError):
    """A row's measurement killed its worker process."""


class MachineryError(RuntimeError):
    """Raised in a worker when the failure is not the row's (setup() failed, a package or model is missing)."""


@dataclass
class StageSummary:
    stage: str
    status: str  # ran, resumed (an interrupted run went on), rebuilt (view only, nothing measured), decided, up-to-date
    rows_in: int = 0
    rows_out: int = 0
    kept: int = 0
    errors: int = 0
    measured: int = 0
    reused: int = 0
    retried: int = 0
    passed_through: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


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
    """Joins the cluster at `run.address`/RAY_ADDRESS, or starts a local Ray that stays on the loopback (local_ray.py)."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return
    address = cfg.run.address or os.environ.get("RAY_ADDRESS")
    if address:
        import ray

        ray.init(address=address, log_to_driver=True)
    else:
        from demix_pipeline.local_ray import init_local_ray

        init_local_ray(num_cpus=cfg.run.num_cpus, object_store_memory=cfg.run.object_store_mb * 1024 * 1024,
                       log_to_driver=True, configure_logging=False)


# ----------------------------------------------------------------------------------------------
# inputs

@dataclass
class StageInput:
    """What a stage receives: rows to measure (with `_key` and `_token` columns) and rows that pass through."""

    rows: pa.Table
    passthrough: pa.Table | None
    fingerprint: str

    @property
    def tokens(self) -> list[str]:
        return self.rows.column("_token").to_pylist()


def stage_input(name: str, out: RunPath, sources: list[dict] | None, fingerprint: str) -> StageInput:
    stage_cls = stage_class(name)
    if name == "ingest":
        if sources is None:
            raise StageFailed("stage ingest needs --input")
        rows = [dict(r, _key=source_file_key(fingerprint, r["path"], r["source_kind"]))
                for r in sorted(sources, key=lambda r: r["path"])]
        for r in rows:
            r["_token"] = token(r["path"], r["_key"])
        table = pa.Table.from_pylist(rows, schema=pa.schema([("path", pa.string()), ("source_kind", pa.string()),
                                                             ("_key", pa.string()), ("_token", pa.string())]))
        not_taken = getattr(sources, "not_taken_token", None)  # files a folder scan left out (ingest.Sources)
        tokens = [r["_token"] for r in rows] + ([not_taken] if not_taken else [])
        return StageInput(table, None, PipelineConfig.fingerprint_of(tokens))
    prev = previous_stage(name)
    folder = stage_dir(out, prev)
    if not (folder / "_SUCCESS").exists():
        raise StageFailed(f"stage {name} needs stage {prev} to have finished in {out} (no {folder / '_SUCCESS'})")
    info = json.loads((folder / "_stage.json").read_text())
    table = read_stage(out, prev)
    table = table.sort_by(stage_class(prev).id_column) if table.num_rows else table
    keep = pc.fill_null(table.column("keep"), False)
    kept = table.filter(keep)
    passthrough = None if stage_cls.fan_out else table.filter(pc.invert(keep))
    upstream = pc.fill_null(kept.column(measure_key_column(prev)), "-")
    keys = pc.binary_join_element_wise(upstream, pa.scalar(fingerprint), "/")
    kept = kept.append_column("_key", keys)
    kept = kept.append_column("_token", token_column(kept.column(stage_cls.measure_unit), keys))
    return StageInput(kept, passthrough, info["output_fingerprint"])


# ----------------------------------------------------------------------------------------------
# workers

def _strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


class _Worker:
    """Holds one stage instance (setup() once) and turns shards of input rows into measurement parts."""

    def __init__(self, stage_cls: type[Stage], config_json: str, ctx: RunContext):
        cfg = PipelineConfig.model_validate_json(config_json)
        self.stage = stage_cls(cfg, ctx)
        self.setup_error: str | None = None
        self.provenance: dict[str, str] = {}
        try:
            # this node's own model store: a node without it (or with other files) stops the stage, named
            check_models(stage_cls.required_models(cfg), ctx.models_dir)
            self.stage.setup()
            self.provenance = self.stage.provenance()  # what this worker measures with, kept with its rows
        except ModelNotFoundError as exc:  # the whole message: it names the model and the command that fixes it
            self.setup_error = f"ModelNotFoundError: {exc}"
        except Exception as exc:  # reported on the first call, with the original message
            self.setup_error = error_text(exc)

    def measure(self, rows: list[dict], batch_size: int) -> list[dict]:
        if self.setup_error:
            raise MachineryError(f"{self.stage.name}: setup() failed on a worker: {self.setup_error} "
                                 f"[node {_node_id()[:12]}]")
        stage = self.stage
        deadline = stage.pipeline_config.run.row_deadline_s
        out_rows: list[dict] = []
        for i in range(0, len(rows), batch_size):
            batch = rows[i:i + batch_size]
            try:
                with row_time(deadline * len(batch) if deadline else None):  # a batch of n rows has n rows' time
                    out_rows.extend(_keyed(stage, stage.measure([_strip(r) for r in batch]), batch))
            except MACHINERY_ERRORS as exc:
                raise MachineryError(f"{stage.name}: {error_text(exc)}") from exc
            except Exception as batch_exc:
                if len(batch) == 1:  # already alone: measuring it again would only fail (or time out) twice
                    out_rows.extend(_keyed(stage, stage.error_rows(_strip(batch[0]), batch_exc), batch,
                                           known=isinstance(batch_exc, RowError)))
                    continue
                for row in batch:  # isolate the failing row
                    try:
                        with row_time(deadline):
                            out_rows.extend(_keyed(stage, stage.measure([_strip(row)]), [row]))
                    except MACHINERY_ERRORS as exc:
                        raise MachineryError(f"{stage.name}: {error_text(exc)}") from exc
                    except Exception as row_exc:
                        out_rows.extend(_keyed(stage, stage.error_rows(_strip(row), row_exc), [row],
                                               known=isinstance(row_exc, RowError)))
        return out_rows

    def run(self, shard: int, rows: list[dict], batch_size: int, run_stamp: str) -> dict:
        out_rows = self.measure(rows, batch_size)
        stage = self.stage
        MeasurementStore(stage.ctx.out, stage.name, stage.measure_unit).write(
            [_strip(r) for r in out_rows], self.provenance, run_stamp, shard)
        return {"shard": shard, "rows_in": len(rows), "node": _node_id(),
                "unknown_errors": [r["error"] for r in out_rows if r["error"] and not r.get("_known_error")],
                "rows_out": len(out_rows)}


def _keyed(stage: Stage, out_rows: list[dict], batch: list[dict], known: bool = False) -> list[dict]:
    """Give each measured row the measure key of the input row it came from; keep only the stage's own
    columns (the view takes upstream columns from the current input)."""
    unit = stage.measure_unit
    input_unit = "path" if stage.name == "ingest" else unit
    keys = {r[input_unit]: r["_key"] for r in batch}
    key_col = measure_key_column(stage.name)
    own = stage.stored_columns()
    for row in out_rows:
        row[key_col] = keys[row[unit]] if len(batch) > 1 else batch[0]["_key"]
        if own is not None:
            for col in list(row):
                if col not in own:
                    del row[col]
        if known:
            row["_known_error"] = True
    return out_rows


def _node_id() -> str:
    """The Ray node this worker runs on (recorded per shard, so a run shows where its work went)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def _run_shard_task(stage_cls, config_json, ctx, shard, rows, batch_size, run_stamp):
    return _Worker(stage_cls, config_json, ctx).run(shard, rows, batch_size, run_stamp)


def _measure_rows_task(stage_cls, config_json, ctx, rows, batch_size):
    return _Worker(stage_cls, config_json, ctx).measure(rows, batch_size)


def _isolate(stage_cls, cfg, ctx, shard, rows, run_stamp, measure_one) -> list[str]:
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
        except ray.exceptions.RayTaskError as exc:
            raise _machinery(stage_cls.name, exc) from None
        except ray.exceptions.RayError as exc:
            crashed = WorkerCrashed(f"the worker died on this row ({type(exc).__name__})")
            out_rows.extend(_keyed(stage, stage.error_rows(_strip(row), crashed), [row]))
    MeasurementStore(ctx.out, stage.name, stage.measure_unit).write([_strip(r) for r in out_rows], stage.provenance(),
                                                                   run_stamp, shard)
    return [r["error"] for r in out_rows if r["error"]]


def _machinery(name: str, exc) -> StageFailed:
    cause = getattr(exc, "cause", None)
    message = str(cause) if isinstance(cause, MachineryError) else error_text(cause or exc)
    return StageFailed(f"stage {name} stopped: {message}")


def _execute(stage_cls, cfg: PipelineConfig, ctx: RunContext, shards: list[tuple[int, list[dict]]],
             run_stamp: str, progress: bool) -> tuple[dict[str, str], list[str]]:
    """Measure the shards on Ray; returns the node id that wrote each shard and the unexplained row errors."""
    import ray
    from tqdm import tqdm

    res = cfg.stage(stage_cls.name).resources
    config_json = cfg.model_dump_json()
    bar = tqdm(total=sum(len(rows) for _, rows in shards), unit="row", desc=stage_cls.name,
               disable=not progress or None, dynamic_ncols=True, file=sys.stderr)
    errors: list[str] = []
    try:
        options = {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus}
        if stage_cls.uses_model:  # a pool of actors: the model is loaded once per actor
            actor_cls = ray.remote(**options)(_Worker)
            idle = [actor_cls.remote(stage_cls, config_json, ctx) for _ in range(min(res.concurrency, len(shards)))]
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
                ref = (actor.run.remote(shard, rows, res.batch_size, run_stamp) if actor is not None
                       else task.remote(stage_cls, config_json, ctx, shard, rows, res.batch_size, run_stamp))
                pending[ref] = (shard, rows, actor)
            done, _ = ray.wait(list(pending), num_returns=1)
            shard, rows, actor = pending.pop(done[0])
            try:
                result = ray.get(done[0])
                bar.update(result["rows_in"])
                nodes[str(shard)] = result["node"]
                errors.extend(result["unknown_errors"])
            except ray.exceptions.RayTaskError as exc:  # a Python exception outside any row's measure()
                raise _machinery(stage_cls.name, exc) from None
            except ray.exceptions.RayError as exc:  # the worker process died (crash in native code, OOM kill)
                log.warning("%s: shard %d crashed its worker (%s); isolating its rows", stage_cls.name, shard,
                            type(exc).__name__)
                if actor is None:
                    one = ray.remote(max_retries=0, **options)(_measure_rows_task)

                    def measure_one(row):
                        return ray.get(one.remote(stage_cls, config_json, ctx, [row], 1))
                else:
                    holder = [actor_cls.remote(stage_cls, config_json, ctx)]

                    def measure_one(row):
                        try:
                            return ray.get(holder[0].measure.remote([row], 1))
                        except ray.exceptions.RayTaskError:
                            raise
                        except ray.exceptions.RayError:
                            holder[0] = actor_cls.remote(stage_cls, config_json, ctx)
                            raise

                errors.extend(_isolate(stage_cls, cfg, ctx, shard, rows, run_stamp, measure_one))
                nodes[str(shard)] = _node_id()  # isolated rows were written from the driver
                actor = None if actor is None else holder[0]
                bar.update(len(rows))
            idle.append(actor)
    finally:
        bar.close()
    return nodes, errors


def _check_not_alike(name: str, measured: int, errors: list[str]) -> None:
    """Every row of a run failing with one and the same message is a bug or a broken setup, not bad input."""
    if measured >= 2 and len(errors) >= measured and len(set(errors)) == 1:
        raise StageFailed(f"stage {name} stopped: all {measured} rows it measured failed alike: {errors[0]}")


# ----------------------------------------------------------------------------------------------
# stage driver

def _read_json(path: RunPath) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def run_stage(name: str, cfg: PipelineConfig, out: str | RunPath, sources: list[dict] | None = None,
              progress: bool | None = None, streamed=None) -> StageSummary:
    """One stage: measure what its store lacks, then decide and write the view. `streamed` is what a
    stream (streaming.py) measured ahead for this stage in this run; its counters are added."""
    out = run_root(out)
    started = time.time()
    stage_cls = stage_class(name)
    ctx = RunContext(out=out, models_dir=cfg.run.models_dir)
    stage = stage_cls(cfg, ctx)  # no setup(): the driver loads no model
    backends = stage.provenance()
    fingerprint = measure_fingerprint(stage)
    inputs = stage_input(name, out, sources, fingerprint)
    folder = stage_dir(out, name)
    decide_fp = decide_fingerprint(name, cfg, out)
    keep_errors = cfg.run.keep_errors
    stored = _read_json(folder / "_stage.json")
    ahead = streamed.measured if streamed else 0
    if (not ahead and stored and (folder / "_SUCCESS").exists() and stored.get("fingerprint") == fingerprint
            and stored.get("input_fingerprint") == inputs.fingerprint and (keep_errors or not stored["errors"])):
        if stored.get("decide_fingerprint") == decide_fp:
            summary = _summary_from(stored, "up-to-date")
            summary.reused, summary.measured, summary.retried = summary.reused + summary.measured, 0, 0
            return summary
        return apply_decide(name, cfg, out)

    store, marker, artifacts_fp = open_store(name, cfg, out)
    tokens = inputs.tokens
    lookup = store.lookup(set(tokens), keep_errors, this_run=streamed.run_stamp if streamed else None)
    todo_mask = [tok not in lookup.reusable for tok in tokens]
    todo = inputs.rows.filter(pa.array(todo_mask, pa.bool_())).to_pylist() if any(todo_mask) else []
    retried = sum(r["_token"] in lookup.failed_before for r in todo)
    total = inputs.rows.num_rows
    passed = inputs.passthrough.num_rows if inputs.passthrough is not None else 0
    shard_size = cfg.stage(name).resources.shard_size
    shards = [(i // shard_size, todo[i:i + shard_size]) for i in range(0, len(todo), shard_size)]
    interrupted = streamed.interrupted if streamed else was_interrupted(folder, marker, fingerprint)
    ensure_dir(folder)
    remove_file(folder / "_SUCCESS")
    # one run stamp for the stream's parts and the stage's own, so `demix status` counts both
    run_stamp = streamed.run_stamp if streamed and streamed.run_stamp else store.new_run_stamp()
    ahead_parts = len(list(store.folder.glob(f"m-{run_stamp}-*.parquet"))) if streamed and store.folder.exists() else 0
    write_json_atomic({"fingerprint": fingerprint, "artifacts_fingerprint": artifacts_fp, "run_stamp": run_stamp,
                       "rows_in": total + passed, "to_measure": len(todo),
                       "shards": len(shards) + ahead_parts}, folder / "_measure.json")
    resumed = interrupted and (total - len(todo) - ahead > 0 if streamed else marker.get("to_measure", 0) > len(todo))
    if todo:
        log.info("%s: measuring %d of %d rows (%d reused, %d retried)", name, len(todo), total, total - len(todo), retried)
        check_models(stage_cls.required_models(cfg), cfg.run.models_dir)  # a missing model fails before any work
        ensure_ray(cfg)
    measure_started = time.time()
    shard_nodes: dict[str, str] = {}
    if shards:
        shard_nodes, errors = _execute(stage_cls, cfg, ctx, shards, run_stamp,
                                       cfg.run.progress if progress is None else progress)
    else:
        errors = []
    _check_not_alike(name, len(todo) + ahead, errors + (streamed.errors if streamed else []))
    measured_now = len(todo) + ahead
    counts = {"measured": measured_now, "retried": retried + (streamed.retried if streamed else 0),
              "reused": max(0, total - measured_now), "passed_through": passed}
    if streamed and streamed.started:
        started = min(started, streamed.started)
        counts["streamed"] = {"measured": ahead, "batches": streamed.batches, "nodes": streamed.nodes,
                              "started": streamed.started, "finished": streamed.finished}
    store.compact(backends, cfg.run.compact_measurements_at)
    stored_rows = store.rows(set(tokens))
    measured = _measured_view(stage, inputs, stored_rows)
    # the columns name what the workers measured them with (their packages, their weights), not the driver's
    measured_by = measured_backends(stored_rows, name) or backends
    summary = _decide_and_write(name, cfg, out, stage, measured_by, inputs.passthrough, measured,
                      {"fingerprint": fingerprint, "input_fingerprint": inputs.fingerprint, **counts,
                       "rows_in": total + passed, "shards": len(shards) + ahead_parts,
                       "measure_s": time.time() - measure_started, "started": started, "shard_nodes": shard_nodes,
                       **({"inputs_not_taken": sources.not_taken} if hasattr(sources, "not_taken") else {})})
    summary.status = "resumed" if resumed else "ran" if measured_now else "rebuilt"
    return summary


def decide_fingerprint(name: str, cfg: PipelineConfig, out: RunPath) -> str:
    """The decide config, plus the outputs of the earlier stages whose views decide() also reads."""
    parts = [cfg.fingerprint(name, "decide")]
    for other in stage_class(name).decide_reads_stages:
        record = _read_json(stage_dir(out, other) / "_stage.json") or {}
        parts.append(f"{record.get('output_fingerprint')}:{record.get('decide_fingerprint')}")
    return parts[0] if len(parts) == 1 else cfg.fingerprint_of({"decide": parts[0], "reads": parts[1:]})


def measure_fingerprint(stage: Stage) -> str:
    """The stage's part of every measure key: version, measure config, backends and their weights' sha256."""
    return stage_fingerprint(stage.name, stage.version, stage.cfg.measure_dict(), stage.provenance())


def open_store(name: str, cfg: PipelineConfig, out: RunPath) -> tuple[MeasurementStore, dict | None, str | None]:
    """The stage's store, its last measure marker, and its artifacts fingerprint; when the artifact
    settings changed (e.g. clip encoding), the artifacts and the measurements naming them are removed."""
    stage_cls = stage_class(name)
    store = MeasurementStore(out, name, stage_cls.measure_unit)
    marker = _read_json(stage_dir(out, name) / "_measure.json")
    artifacts_fp = stage_cls.artifacts_fingerprint(cfg)
    if marker and marker.get("artifacts_fingerprint") != artifacts_fp:
        log.warning("%s: artifact settings changed; removing its artifacts and measurements so they are made anew", name)
        stage_cls.clear_artifacts(out)
        store.clear()
    return store, marker, artifacts_fp


def was_interrupted(folder: RunPath, marker: dict | None, fingerprint: str) -> bool:
    """An attempt at the stage with this fingerprint began measuring and never wrote `_SUCCESS`."""
    return bool(marker) and not (folder / "_SUCCESS").exists() and marker.get("fingerprint") == fingerprint


def _project(table: pa.Table, target: pa.Schema) -> pa.Table:
    """The table's columns that `target` has, nulls for the others, in target's order and types."""
    arrays = [table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in target]
    return pa.Table.from_arrays(arrays, schema=target)


def _measured_view(stage: Stage, inputs: StageInput, stored: pa.Table | None) -> pa.Table:
    """Rows for decide: each input row's current columns with this stage's stored measurements on top."""
    target = schema(stage.name)
    if stored is None:
        return target.empty_table()
    own = stage.stored_columns()
    if own is None:  # the stage makes its rows anew (ingest, shots)
        return _project(stored, target)
    index = pc.index_in(inputs.rows.column(stage.id_column), value_set=stored.column(stage.id_column))
    if index.null_count:
        raise StageFailed(f"stage {stage.name}: {index.null_count} rows have no stored measurement after measuring")
    taken = stored.take(index)
    arrays = [taken.column(f.name) if f.name in own else
              inputs.rows.column(f.name) if f.name in inputs.rows.column_names else pa.nulls(inputs.rows.num_rows, f.type)
              for f in target]
    return pa.Table.from_arrays(arrays, schema=target)


def apply_decide(name: str, cfg: PipelineConfig, out: str | RunPath) -> StageSummary:
    """Re-apply decide() with the current config to the stored view: no decoding, no model.

    Only the columns decide reads and writes are gathered over the whole view; each part is then
    rewritten where it lies with its new decisions, so the driver holds one part at a time.
    """
    out = run_root(out)
    folder = stage_dir(out, name)
    stored = _read_json(folder / "_stage.json")
    if stored is None:
        raise StageFailed(f"stage {name} has no finished measurements in {out}; run it first")
    decide_started = time.time()
    stage = stage_class(name)(cfg, RunContext(out=out, models_dir=cfg.run.models_dir))
    columns = stage.decide_columns()
    parts = part_files(out, name)
    narrow = (pa.concat_tables([read_columns(p, columns) for p in parts]) if parts
              else schema(name).empty_table().select(columns)).combine_chunks()
    pa.default_memory_pool().release_unused()
    measured = pc.is_valid(narrow.column(measure_key_column(name))).to_numpy(zero_copy_only=False)
    decided = stage.decide_table(narrow.filter(pa.array(measured)))
    # every row's new values: the decided rows' in their places, the passed-through rows' as they were
    order = np.arange(narrow.num_rows)
    order[measured] = narrow.num_rows + np.arange(int(measured.sum()))
    take = pa.array(order)
    view = pa.table({c: pa.concat_arrays([narrow.column(c).combine_chunks(),
                                          decided.column(c).combine_chunks().cast(narrow.schema.field(c).type)]).take(take)
                     for c in columns})
    remove_file(folder / "_SUCCESS")
    offset = 0
    for path in parts:
        part = read_part(path, name)
        for c in columns:
            index = part.schema.get_field_index(c)
            part = part.set_column(index, part.schema.field(index), view.column(c).slice(offset, part.num_rows))
        write_atomic(part, path)
        offset += part.num_rows
        del part
        pa.default_memory_pool().release_unused()  # the allocator keeps freed parts otherwise: RSS grows per part
    keys = ("fingerprint", "input_fingerprint", "rows_in", "shards", "measure_s", "started", "shard_nodes")
    counts = {"measured": 0, "retried": 0, "reused": decided.num_rows, "passed_through": narrow.num_rows - decided.num_rows}
    summary = _record_and_finish(name, cfg, stage, stored.get("backends") or stage.provenance(), folder, view, decided,
                                 decide_started, {**{k: stored.get(k) for k in keys}, **counts,
                                                  **{k: stored[k] for k in ("inputs_not_taken",) if k in stored}})
    summary.status = "decided"
    return summary


def _decide_and_write(name: str, cfg: PipelineConfig, out: RunPath, stage: Stage, backends: dict[str, str],
                      passthrough: pa.Table | None, measured: pa.Table, info: dict) -> StageSummary:
    folder = stage_dir(out, name)
    decide_started = time.time()
    target = schema(name, {**_upstream_backends(out, name), **backends})
    decided = _project(stage.decide_table(measured), target)
    view = pa.concat_tables([_project(passthrough, target), decided]) if passthrough is not None else decided
    view = view.sort_by(stage.id_column) if view.num_rows else view
    part_rows = cfg.run.manifest_part_rows
    wanted = set()
    for number, start in enumerate(range(0, view.num_rows, part_rows)):
        path = folder / part_name(number)
        write_atomic(view.slice(start, part_rows), path)
        wanted.add(path.name)
    for path in part_files(out, name):
        if path.name not in wanted:
            remove_file(path)
    return _record_and_finish(name, cfg, stage, backends, folder, view, decided, decide_started, info)


def _record_and_finish(name: str, cfg: PipelineConfig, stage: Stage, backends: dict[str, str], folder: RunPath,
                       view: pa.Table, decided: pa.Table, decide_started: float, info: dict) -> StageSummary:
    """_stage.json from the view's decision columns, the error-rate check, then `_SUCCESS`."""
    errors = view.num_rows - view.column("error").null_count
    keep = pc.fill_null(view.column("keep"), False)
    kept = pc.sum(keep).as_py() or 0
    reasons = pc.value_counts(pc.fill_null(decided.filter(pc.invert(pc.fill_null(decided.column("keep"), False)))
                                           .column("drop_reason"), "unknown")).to_pylist()
    dropped = {item["values"]: item["counts"] for item in reasons}
    hours = pc.fill_null(view.column(hours_column(name)), 0.0)
    record = {
        "stage": name, "stage_version": stage.version, "code_version": code_version(),
        "backends": backends, "config": cfg.stage(name).model_dump(mode="json"),
        "decide_fingerprint": decide_fingerprint(name, cfg, folder.parent), "output_fingerprint": _view_fingerprint(view, stage),
        "rows_out": view.num_rows, "kept": kept, "errors": errors, "dropped_by_reason": dict(sorted(dropped.items())),
        "hours_out": (pc.sum(hours).as_py() or 0.0) / 3600.0,
        "hours_kept": (pc.sum(hours.filter(keep)).as_py() or 0.0) / 3600.0,
        "decide_s": time.time() - decide_started, "finished": time.time(), **info,
    }
    rows_measured = max(1, decided.num_rows)
    max_rate = cfg.stage(name).max_error_rate
    write_json_atomic(record, folder / "_stage.json")
    if errors / rows_measured > max_rate:
        raise StageFailed(f"stage {name}: {errors} of {rows_measured} rows failed, over max_error_rate "
                          f"{max_rate}; see the `error` column in {folder} (they are retried on the next run)")
    (folder / "_SUCCESS").write_text("")
    return _summary_from(record, "ran")


def _view_fingerprint(view: pa.Table, stage: Stage) -> str:
    """What later stages' input fingerprints build on: ids, measure keys and decisions of every row."""
    columns = [stage.id_column, measure_key_column(stage.name), "keep", "drop_reason", "error"]
    parts = [pc.fill_null(pc.cast(view.column(c), pa.string()), "") for c in columns]
    lines = pc.binary_join_element_wise(*parts, TOKEN_SEP).to_pylist() if view.num_rows else []
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


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
                        measured=record.get("measured") or 0, reused=record.get("reused") or 0,
                        retried=record.get("retried") or 0, passed_through=record.get("passed_through") or 0,
                        dropped=record["dropped_by_reason"],
                        seconds=(record.get("finished") or 0) - (record.get("started") or 0))


__all__ = ["StageFailed", "StageSummary", "WorkerCrashed", "apply_decide", "column_stage", "open_store", "run_stage",
           "was_interrupted"]
