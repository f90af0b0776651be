"""A stage's measurement store: what measure() returned, kept by row and measure key, so a row is measured once.

Every output row carries `<stage>.measure_key`, which says what its measurement was computed from:
the measure key of the upstream row it came from plus this stage's fingerprint (stage version,
measure config, backends). A key is therefore a path of fingerprints, one per stage
(`9f0c…/51ab…/e3d2…`): a new source, another stage's thresholds or a row that newly passes leave
every existing key as it was, while a new measure config in one stage changes the keys of that
stage and of every row downstream of it.

Measured rows (before decide) are appended to `<out>/<NN>_<stage>/_measurements/m-<run>-<shard>.parquet`,
atomically, as each shard finishes. A run measures only the inputs whose (id, key) has no usable
measurement there, so a killed run resumes where it stopped and a grown run measures only the new
rows. The folder starts with `_`, so Parquet readers of the stage folder (pyarrow datasets,
DuckDB's `<NN>_<stage>/*.parquet`) see the stage's view only.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from demix_pipeline.config import PipelineConfig
from demix_pipeline.manifest import read_columns, read_part, schema, stage_dir, to_table, write_atomic
from demix_pipeline.storage import RunPath, remove_tree

MEASURE_DIR = "_measurements"
MEASURED_BY = b"demix.measured_by"  # schema metadata of rows(): the backend strings of the parts they came from
PRODUCER_SEP = " | "  # joins the backend strings of a folded part's rows when workers differed
TOKEN_SEP = "\x1f"  # joins a row id and its measure key into one lookup token
FINGERPRINT_CHARS = 12


def measure_key_column(stage: str) -> str:
    return f"{stage}.measure_key"


def stage_fingerprint(name: str, version: str, measure_config: dict, backends: dict[str, str]) -> str:
    """What a stage's measurements depend on besides their input row."""
    return PipelineConfig.fingerprint_of({"stage": name, "version": version, "config": measure_config,
                                          "backends": backends})[:FINGERPRINT_CHARS]


def source_file_key(fingerprint: str, path: str, source_kind: str) -> str:
    """An ingest row's key: the stage fingerprint and the file as it is now (path, kind, size, mtime)."""
    try:
        st = os.stat(path)
        stamp = (st.st_size, st.st_mtime_ns)
    except OSError:
        stamp = (None, None)
    return PipelineConfig.fingerprint_of([fingerprint, path, source_kind, *stamp])[:FINGERPRINT_CHARS]


def token(row_id: str, key: str) -> str:
    return f"{row_id}{TOKEN_SEP}{key}"


def token_column(ids, keys) -> pa.Array:
    """token() over two columns at once."""
    return pc.binary_join_element_wise(ids, keys, TOKEN_SEP)


@dataclass
class Lookup:
    """Which input tokens a run can reuse and which it must measure (again)."""

    reusable: set[str]
    failed_before: set[str]  # tokens whose stored measurements all errored (retried unless keep_errors)


class MeasurementStore:
    """The `_measurements/` folder of one stage; `id_column` names the unit a measurement covers
    (the source for shots, the clip for clip stages, the file's uri for ingest)."""

    def __init__(self, out: RunPath, stage: str, id_column: str):
        self.stage = stage
        self.folder = stage_dir(out, stage) / MEASURE_DIR
        self.id_column = id_column
        self.key_column = measure_key_column(stage)

    def parts(self) -> list[RunPath]:
        return sorted(self.folder.glob("m-*.parquet"), key=lambda p: p.name) if self.folder.exists() else []

    def clear(self) -> None:
        remove_tree(self.folder)

    def new_run_stamp(self) -> str:
        return f"{time.time_ns():020d}"

    def write(self, rows: list[dict], backends: dict[str, str], run_stamp: str, shard: int | str) -> None:
        """One part; `shard` is the shard's number in a stage run, or a unique name in a stream."""
        name = f"{shard:05d}" if isinstance(shard, int) else shard
        write_atomic(to_table(self.stage, rows, backends), self.folder / f"m-{run_stamp}-{name}.parquet")

    def _index(self) -> tuple[list[str], list[int], list[bool]]:
        """(token, part number, errored) of every stored row, read column-wise."""
        tokens: list[str] = []
        part_of: list[int] = []
        errored: list[bool] = []
        for number, path in enumerate(self.parts()):
            table = read_columns(path, [self.id_column, self.key_column, "error"])
            tokens.extend(token_column(table.column(self.id_column), table.column(self.key_column)).to_pylist())
            part_of.extend([number] * table.num_rows)
            errored.extend(pc.is_valid(table.column("error")).to_pylist())
        return tokens, part_of, errored

    def winners(self) -> tuple[dict[str, int], set[str]]:
        """token -> the part whose measurement counts (the latest without an error, else the latest),
        and the tokens that only ever errored."""
        tokens, part_of, errored = self._index()
        best: dict[str, tuple[bool, int]] = {}
        for tok, part, err in zip(tokens, part_of, errored):
            candidate = (not err, part)
            if tok not in best or candidate > best[tok]:
                best[tok] = candidate
        # a measurement with an error row in it (a shots source with one clip that failed to cut) counts as failed
        failed_parts = {(tok, part) for tok, part, err in zip(tokens, part_of, errored) if err}
        failed = {tok for tok, (clean, part) in best.items() if not clean or (tok, part) in failed_parts}
        return {tok: part for tok, (_, part) in best.items()}, failed

    def lookup(self, needed: set[str], keep_errors: bool, this_run: str | None = None) -> Lookup:
        """`this_run`: a run stamp whose measurements count as done even when they failed (a stream of
        the same run measured them; failing again is for the next run to retry)."""
        chosen, failed = self.winners()
        present = needed & set(chosen)
        failed_before = present & failed
        if this_run:
            names = [p.name for p in self.parts()]
            failed_before = {tok for tok in failed_before if not names[chosen[tok]].startswith(f"m-{this_run}-")}
        reusable = present if keep_errors else present - failed_before
        return Lookup(reusable=reusable, failed_before=failed_before)

    def compact(self, backends: dict[str, str], at_parts: int) -> bool:
        """Fold the parts into one holding each token's winning measurement, once there are `at_parts` or more.

        Runs measure in small shards, so parts pile up; every run reads their index. The folded part
        is written (atomically, under a newer name) before the old ones are removed, so a kill in
        between leaves duplicates of equal content, never a loss."""
        parts = self.parts()
        if len(parts) < at_parts:
            return False
        chosen, _ = self.winners()
        folded = self.rows(set(chosen), chosen)
        if folded is None:
            return False
        producers = measured_backends(folded, self.stage) or {}  # the workers' strings outlive the fold
        write_atomic(pa.Table.from_arrays(folded.columns, schema=schema(self.stage, {**backends, **producers})),
                     self.folder / f"m-{self.new_run_stamp()}-compact.parquet")
        for path in parts:
            path.unlink()
        return True

    def rows(self, wanted: set[str], chosen: dict[str, int] | None = None) -> pa.Table:
        """The winning measured rows of the wanted tokens (all rows of a measurement: a source's clips);
        `chosen` is winners() when the caller has it already."""
        chosen = self.winners()[0] if chosen is None else chosen
        tables = []
        producers: set[str] = set()
        for number, path in enumerate(self.parts()):
            mine = {tok for tok in wanted if chosen.get(tok) == number}
            if not mine:
                continue
            table = read_part(path, self.stage)
            tokens = token_column(table.column(self.id_column), table.column(self.key_column))
            tables.append(table.filter(pc.is_in(tokens, value_set=pa.array(sorted(mine), pa.string()))))
            backend = (table.schema.field(self.key_column).metadata or {}).get(b"backend", b"").decode()
            producers.update(p for p in backend.split(PRODUCER_SEP) if p)
        if not tables:
            return None
        merged = pa.concat_tables(tables)
        return merged.replace_schema_metadata({**(merged.schema.metadata or {}),
                                               MEASURED_BY: json.dumps(sorted(producers)).encode()})


def measured_backends(rows: pa.Table | None, stage: str) -> dict[str, str] | None:
    """{stage: the backend strings of the workers that measured `rows`} (MeasurementStore.rows()), or None."""
    raw = (rows.schema.metadata or {}).get(MEASURED_BY) if rows is not None else None
    producers = json.loads(raw) if raw else []
    return {stage: PRODUCER_SEP.join(producers)} if producers else None
