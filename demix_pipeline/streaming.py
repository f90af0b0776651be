"""Runs a pipeline: rows stream through the per-row stages on Ray Data, then each stage builds its view.

`demix run` over several stages works in three steps:
1. stages whose decision needs the whole corpus (ingest's duplicates) run on their own (runner.run_stage);
2. the per-row stages after them (shots .. caption) are one Ray Data pipeline: each is a `map_batches`
   actor pool (the stage's num_cpus, num_gpus, concurrency; setup() once per actor) that measures the
   rows of a block not yet in its measurement store, appends them there, decides them row by row and
   hands the kept ones to the next stage at once. A source's clips are in audio_quality while shots
   cuts the next source; a GPU stage does not wait for the whole corpus;
3. every stage then builds its view from its store, in order (runner.run_stage): nothing is left to
   measure but what the stream could not do, and the counters of the stream are added to the stage's.

The stream is measure-ahead only: the views, decisions and `_SUCCESS` come from step 3, which measures
whatever the stream did not (a row whose worker crashed, a stream stopped by an error), with the
runner's crash isolation and error messages. Rows of the stream's per-row decision that the stage's
own decision drops cost a measurement and nothing else, and there are none while decide is row-local
(`Stage.decide_per_row`). Ray Data's own `ray.data.checkpoint` is not used: it filters the source by
id at the sink, while a row here is reusable per stage and per measure key (see measurements.py).
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from demix_pipeline.config import PipelineConfig
from demix_pipeline.manifest import read_stage, stage_dir, to_table, write_json_atomic
from demix_pipeline.measurements import MEASURE_DIR, MeasurementStore, measure_key_column, token
from demix_pipeline.models import check_models
from demix_pipeline.runner import (StageFailed, StageSummary, _node_id, _strip, _Worker, decide_fingerprint, ensure_ray,
                                   measure_fingerprint, open_store, previous_stage, run_stage, was_interrupted)
from demix_pipeline.stages import RunContext, stage_class
from demix_pipeline.stages.base import error_text
from demix_pipeline.storage import RunPath, ensure_dir, remove_file, run_root

log = logging.getLogger("demix.streaming")

STATS_GLOB = "_stream-*.json"


@dataclass
class StreamCounts:
    """What the stream did for one stage (added to the stage's `_stage.json` counters)."""

    run_stamp: str = ""
    interrupted: bool = False  # the stage's last attempt never finished (so this run resumes it)
    measured: int = 0
    retried: int = 0
    errors: list[str] = field(default_factory=list)  # unexplained row errors, for the runner's "all alike" check
    batches: int = 0
    started: float | None = None
    finished: float | None = None
    nodes: dict[str, int] = field(default_factory=dict)


def fingerprint_of_stage(name: str, cfg: PipelineConfig, out: RunPath) -> str:
    return measure_fingerprint(stage_class(name)(cfg, RunContext(out=out, models_dir=cfg.run.models_dir)))


def streamable(names: list[str]) -> list[str]:
    """The longest run of consecutive per-row stages in `names` after a stage that is finished or
    runs first (ingest is never streamed: its duplicates need the whole corpus)."""
    best: list[str] = []
    group: list[str] = []
    for name in names:
        per_row = stage_class(name).decide_per_row
        if per_row and group and previous_stage(name) == group[-1]:
            group.append(name)
        else:
            group = [name] if per_row else []
        best = group if len(group) > len(best) else best
    return best if len(best) >= 2 else []


class _StreamStage:
    """One stage in the stream: measure what the store lacks, store it, decide row by row, pass the kept on."""

    def __init__(self, name: str, config_json: str, ctx: RunContext, fingerprint: str, run_stamp: str,
                 last: bool, set_up_early: bool = False):
        stage_cls = stage_class(name)
        self.stage = stage_cls(PipelineConfig.model_validate_json(config_json), ctx)
        self.worker_args = (stage_cls, config_json, ctx)
        # setup() once per actor: when it first has a row to measure, or (a stage with nothing stored, which
        # measures every row it gets) at once, in a thread, so its models load while the stages before it work
        self.worker: _Worker | None = None
        self._early: threading.Thread | None = None
        if set_up_early:
            self._early = threading.Thread(target=self._set_up, name=f"{name}-setup", daemon=True)
            self._early.start()
        self.fingerprint, self.run_stamp, self.last = fingerprint, run_stamp, last
        self.upstream_key = measure_key_column(previous_stage(name))
        self.store = MeasurementStore(ctx.out, name, stage_cls.measure_unit)
        # what was measured before this run; parts this run writes sort after these (newer run stamp)
        self.chosen, self.failed = self.store.winners()
        self.keep_errors = self.stage.pipeline_config.run.keep_errors
        self.tag = uuid.uuid4().hex[:8]
        self.batches = 0

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.time()
        stage = self.stage
        unit = stage.measure_unit
        rows = batch.to_pylist()
        for row in rows:
            row["_key"] = f"{row.get(self.upstream_key) or '-'}/{self.fingerprint}"
            row["_token"] = token(row[unit], row["_key"])
        reusable = {r["_token"] for r in rows
                    if r["_token"] in self.chosen and (self.keep_errors or r["_token"] not in self.failed)}
        todo = [r for r in rows if r["_token"] not in reusable]
        if self._early is not None:
            self._early.join()
            self._early = None
        if todo and self.worker is None:
            self._set_up()
        measured = self.worker.measure(todo, stage.cfg.resources.batch_size) if todo else []
        self.batches += 1
        shard = f"s{self.tag}{self.batches:06d}"
        if measured:
            self.store.write([_strip(r) for r in measured], self.worker.provenance, self.run_stamp, shard)
        table = self._rows_for_decide(rows, measured, reusable)
        decided = stage.decide_table(table) if table.num_rows else table
        write_json_atomic({"measured": len(todo), "retried": sum(r["_token"] in self.chosen for r in todo),
                           "errors": [r["error"] for r in measured if r["error"] and not r.get("_known_error")],
                           "started": started, "finished": time.time(), "node": _node_id()},
                          self.store.folder / f"_stream-{self.run_stamp}-{shard}.json")
        kept = decided.filter(pc.fill_null(decided.column("keep"), False)) if decided.num_rows else decided
        return kept.select([stage.id_column]).slice(0, 0) if self.last else kept

    def _set_up(self) -> None:
        self.worker = _Worker(*self.worker_args)  # keeps a failing setup()'s message for the first measure()

    def _rows_for_decide(self, rows: list[dict], measured: list[dict], reusable: set[str]) -> pa.Table:
        """As runner._measured_view: the input row's columns with this stage's measurements on top."""
        stage = self.stage
        stored = self.store.rows(reusable, self.chosen) if reusable else None
        own = stage.stored_columns()
        results = [_strip(r) for r in measured] + (stored.to_pylist() if stored is not None else [])
        if own is None:  # the stage makes its rows anew (a source's clips)
            merged = results
        else:
            by_unit = {r[stage.measure_unit]: r for r in results}
            merged = [{**_strip(row), **{k: v for k, v in by_unit[row[stage.measure_unit]].items() if k in own}}
                      for row in rows]
        return to_table(stage.name, merged, stage.backends())


def _blocks(table: pa.Table, rows_per_block: int) -> list[pa.Table]:
    return [table.slice(i, rows_per_block) for i in range(0, table.num_rows, rows_per_block)]


def measure_ahead(names: list[str], cfg: PipelineConfig, out: RunPath, progress: bool) -> dict[str, StreamCounts]:
    """Stream the input of names[0] through names (consecutive per-row stages); returns each stage's counts.

    A failure inside the stream is logged and ends it; the stages then finish one by one, where a
    machinery failure stops the run with its original message and crashing rows are isolated."""
    import ray
    import ray.data

    first = names[0]
    prev = previous_stage(first)
    if not (stage_dir(out, prev) / "_SUCCESS").exists():
        return {}  # run_stage says what is missing
    source = read_stage(out, prev)
    source = source.filter(pc.fill_null(source.column("keep"), False)) if source.num_rows else source
    if not source.num_rows:
        return {}
    check_models([need for name in names for need in stage_class(name).required_models(cfg)], cfg.run.models_dir)
    run_stamp = MeasurementStore(out, first, "").new_run_stamp()
    fingerprints = {name: fingerprint_of_stage(name, cfg, out) for name in names}
    interrupted, early = {}, {}
    for name in names:
        store, marker, artifacts_fp = open_store(name, cfg, out)
        early[name] = not store.parts()
        interrupted[name] = was_interrupted(stage_dir(out, name), marker, fingerprints[name])
        ensure_dir(store.folder)
        for stale in store.folder.glob(STATS_GLOB):  # counters of a stream that was killed
            remove_file(stale)
        write_json_atomic({"fingerprint": fingerprints[name], "artifacts_fingerprint": artifacts_fp,
                           "run_stamp": run_stamp, "streamed": True}, stage_dir(out, name) / "_measure.json")
    ensure_ray(cfg)
    ctx = RunContext(out=out, models_dir=cfg.run.models_dir)
    config_json = cfg.model_dump_json()
    data_context = ray.data.DataContext.get_current()
    data_context.enable_progress_bars = progress
    if not progress:  # its "progress bars disabled" warning and per-run banner say nothing a user asked for
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    data_context.print_on_execution_start = False
    # every stage needs one actor at least; on a small machine they share the CPUs
    cpus = ray.cluster_resources().get("CPU", 1.0)
    wanted = sum(cfg.stage(name).resources.num_cpus for name in names)
    scale = min(1.0, cpus / wanted)
    rows_per_block = 1 if stage_class(first).fan_out else cfg.stage(first).resources.shard_size
    dataset = ray.data.from_arrow(_blocks(source.sort_by(stage_class(prev).id_column), rows_per_block))
    for name in names:
        res = cfg.stage(name).resources
        with warnings.catch_warnings():
            # Ray Data restarts a dead actor and retries its batch forever by default: a row that kills its
            # worker would loop. max_restarts=0 (a deprecated keyword in 2.60, still the only switch) ends the
            # stream instead, and the stage's own run isolates the row.
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = dataset.map_batches(
                _StreamStage, batch_size=None, batch_format="pyarrow", zero_copy_batch=True,
                fn_constructor_args=(name, config_json, ctx, fingerprints[name], run_stamp, name == names[-1],
                                     early[name]),
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=res.concurrency),
                num_cpus=res.num_cpus * scale, num_gpus=res.num_gpus or None, max_restarts=0, max_task_retries=0)
    log.info("streaming %s over %d rows of %s", " -> ".join(names), source.num_rows, prev)
    try:
        for _ in dataset.iter_internal_ref_bundles():
            pass
    except Exception as exc:  # noqa: BLE001 - the stages finish one by one and report it properly
        log.warning("the stream stopped (%s); the stages finish one by one", error_text(exc)[:1000])
    return {name: _collect(out, name, run_stamp, interrupted[name]) for name in names}


def _collect(out: RunPath, name: str, run_stamp: str, interrupted: bool) -> StreamCounts:
    counts = StreamCounts(run_stamp=run_stamp, interrupted=interrupted)
    folder = stage_dir(out, name) / MEASURE_DIR
    for path in folder.glob(STATS_GLOB):
        if path.name.startswith(f"_stream-{run_stamp}-"):
            record = json.loads(path.read_text())
            counts.measured += record["measured"]
            counts.retried += record["retried"]
            counts.errors.extend(record["errors"])
            counts.batches += 1
            counts.started = min(counts.started or record["started"], record["started"])
            counts.finished = max(counts.finished or record["finished"], record["finished"])
            counts.nodes[record["node"]] = counts.nodes.get(record["node"], 0) + 1
        remove_file(path)
    return counts


def all_up_to_date(names: list[str], cfg: PipelineConfig, out: RunPath) -> bool:
    """Every stage of `names` would be up to date (runner.run_stage's test, chained through the stages'
    recorded output fingerprints), so a stream would find nothing to do."""
    def record(name: str) -> dict | None:
        path = stage_dir(out, name) / "_stage.json"
        return json.loads(path.read_text()) if path.exists() and (stage_dir(out, name) / "_SUCCESS").exists() else None

    upstream = record(previous_stage(names[0]))
    for name in names:
        mine = record(name)
        if not (upstream and mine and mine.get("fingerprint") == fingerprint_of_stage(name, cfg, out)
                and mine.get("input_fingerprint") == upstream.get("output_fingerprint")
                and mine.get("decide_fingerprint") == decide_fingerprint(name, cfg, out)
                and (cfg.run.keep_errors or not mine.get("errors"))):
            return False
        upstream = mine
    return True


def run_stages(names: list[str], cfg: PipelineConfig, out: str | RunPath, sources: list[dict] | None = None,
               progress: bool | None = None, on_stage=None) -> list[StageSummary]:
    """`demix run`: the stages in order, the per-row ones streamed (module docstring)."""
    out = run_root(out)
    progress = cfg.run.progress if progress is None else progress
    group = streamable(names) if cfg.run.stream else []
    summaries = []
    streamed: dict[str, StreamCounts] = {}
    for name in names:
        if group and name == group[0] and not all_up_to_date(group, cfg, out):
            streamed = measure_ahead(group, cfg, out, progress)
        summary = run_stage(name, cfg, out, sources=sources if name == "ingest" else None, progress=progress,
                            streamed=streamed.get(name))
        summaries.append(summary)
        if on_stage is not None:
            on_stage(summary)
    return summaries


__all__ = ["StageFailed", "StreamCounts", "measure_ahead", "run_stages", "streamable"]
