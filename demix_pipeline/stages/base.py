"""The stage contract: measure (expensive, per batch, on workers) then decide (cheap, pure, on the driver).

A stage declares its name, config model, resources (from its YAML), whether it loads a model
(then it runs as a pool of Ray actors, `setup()` once per actor) and whether one input row
becomes many output rows (`fan_out`, e.g. a source becoming clips).
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pyarrow as pa

from demix_pipeline.config import PipelineConfig, StageConfig
from demix_pipeline.storage import RunPath, local_input


class RowError(Exception):
    """A row failed for a known reason; `drop_reason` is the code written to the manifest."""

    drop_reason = "error"


@dataclass(frozen=True)
class RunContext:
    out: RunPath  # the run root: a local Path or a UPath on object storage
    models_dir: str | None = None


@dataclass(frozen=True)
class ModelUse:
    """A store model a stage loads when its config key `selector` has one of the values in `when`."""

    selector: str                     # e.g. "diarizer"
    model_key: str                    # config key holding the model's store name, e.g. "pyannote_model"
    files: tuple[str, ...] = ()       # files the backend opens in the model's folder
    file_keys: tuple[str, ...] = ()   # config keys whose values name more such files
    when: tuple[str, ...] = ("reference",)  # selector values whose backend loads this model


def error_text(exc: BaseException) -> str:
    message = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {message[:500]}"


class Stage:
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    id_column: ClassVar[str] = "clip_id"
    # the output column naming the input row a measurement came from (its unit of reuse)
    measure_unit: ClassVar[str] = "clip_id"
    fan_out: ClassVar[bool] = False
    # decide_table decides each row on its own (no corpus-wide rule), so rows can stream on to the next stage
    decide_per_row: ClassVar[bool] = True
    # earlier stages whose views decide() reads besides its input (assign: ingest's near-duplicate groups);
    # a change of their output re-applies this stage's decide
    decide_reads_stages: ClassVar[tuple[str, ...]] = ()
    uses_model: ClassVar[bool] = False
    model_uses: ClassVar[tuple[ModelUse, ...]] = ()

    def __init__(self, config: PipelineConfig, ctx: RunContext):
        self.pipeline_config = config
        self.cfg: StageConfig = config.stage(self.name)
        self.ctx = ctx

    @classmethod
    def artifacts_fingerprint(cls, config: PipelineConfig) -> str | None:
        """What the stage's artifact files depend on beyond their ids; None if it writes none."""
        return None

    @classmethod
    def clear_artifacts(cls, out: RunPath) -> None:
        """Remove the stage's artifact files (their settings changed, so they cannot be reused)."""

    @classmethod
    def required_models(cls, config: PipelineConfig) -> list[tuple[str, str, tuple[str, ...]]]:
        """Store models the configured backends load: (name, config key naming it, files opened).

        The runner checks them before any work starts, so a missing model fails the run at once.
        """
        cfg = config.stage(cls.name)
        return [(getattr(cfg, use.model_key), f"{cls.name}.{use.model_key}",
                 use.files + tuple(getattr(cfg, key) for key in use.file_keys))
                for use in cls.model_uses if getattr(cfg, use.selector) in use.when]

    @classmethod
    def unset_thresholds(cls, stage_config: dict) -> list[tuple[str, str]]:
        """Decide thresholds the configured backend needs but the config leaves unset, as (config key,
        column); while any is unset that check removes nothing, so the run says so at start and the
        report shows the column's distribution with the command that sets it."""
        return []

    def unset_thresholds_warning(self) -> str | None:
        unset = self.unset_thresholds(self.cfg.model_dump(mode="json"))
        if not unset:
            return None
        keys = ", ".join(f"{self.name}.{key}" for key, _ in unset)
        example = f"{self.name}.{unset[0][0]}=VALUE"
        return (f"{self.name}: {keys} unset, so this backend's check removes no clip. Choose them from the "
                f"distributions in `demix report` (section 'Thresholds to set'), then `demix decide {self.name} "
                f"--set {example}` (no re-measuring).")

    def model_folder(self, name: str) -> Path:
        """The store folder of a model this stage's config requires (checked for its files)."""
        from demix_pipeline.models import resolve_model

        files = next(files for model, _, files in self.required_models(self.pipeline_config) if model == name)
        return resolve_model(name, self.ctx.models_dir, files)

    def stored_columns(self) -> set[str] | None:
        """Columns the measurement store keeps for a row (None: all; the stage makes its rows anew)."""
        return None

    def setup(self) -> None:
        """Load models or heavy objects; called once per worker before any measure()."""

    def artifact(self, uri: str) -> AbstractContextManager[Path]:
        """A local file for an artifact URI of the manifest (a temporary copy when the run is on object storage)."""
        return local_input(self.ctx.out / uri)

    def backends(self) -> dict[str, str]:
        """Producer of this stage's columns, e.g. {"shots": "demix-detector 1 + ffmpeg 9.0"}."""
        return {self.name: f"demix_pipeline.stages.{self.name} {self.version}"}

    def provenance(self) -> dict[str, str]:
        """backends() plus the store name and short sha256 of the weights of every store model the configured
        backends load: what the measure key is built from and what the stage's columns say produced them.
        On a worker it is computed from the worker's own model store."""
        backends = self.backends()
        needed = self.required_models(self.pipeline_config)
        if not needed:
            return backends
        from demix_pipeline.models import weights_id

        ids = ", ".join(weights_id(name, files, self.ctx.models_dir) for name, _, files in needed)
        return {**backends, self.name: f"{backends[self.name]}; weights: {ids}"}

    def measure(self, rows: list[dict]) -> list[dict]:
        """Rows in (kept rows of the previous stage) -> output rows with `<stage>.*` measurements."""
        raise NotImplementedError

    def error_rows(self, row: dict, exc: BaseException) -> list[dict]:
        """What a failed input row becomes in the output."""
        raise NotImplementedError

    # the columns decide_table reads or writes besides ids, keys and keep/drop_reason/error
    decide_reads: ClassVar[tuple[str, ...]] = ()

    def decide_columns(self) -> list[str]:
        """What `demix decide` gathers over the whole view (everything decide_table touches)."""
        from demix_pipeline.manifest import hours_column

        base = [self.id_column, f"{self.name}.measure_key", "keep", "drop_reason", "error", hours_column(self.name)]
        return list(dict.fromkeys(base + list(self.decide_reads)))

    def decide_table(self, table: pa.Table) -> pa.Table:
        """keep/drop_reason (and decided columns) from stored measurements and the config's thresholds,
        column-wise (demix_pipeline/decide.py); no I/O, no model, no loop over rows."""
        return table

    def decide(self, rows: list[dict]) -> list[dict]:
        """decide_table for a few rows given as dicts (tests, small tools)."""
        from demix_pipeline.decide import rows_table

        decided = self.decide_table(rows_table(self.name, rows)).to_pylist()
        return [{**row, **new} for row, new in zip(rows, decided)]


class ClipStage(Stage):
    """A stage that measures and decides each clip on its own (one row in, one row out)."""

    id_column = "clip_id"

    def stored_columns(self) -> set[str] | None:
        """The stage's own columns and the row's ids: upstream columns come from the current input."""
        from demix_pipeline.manifest import own_columns

        return own_columns(self.name) | {"clip_id", "source_id", "source_kind"}

    def measure(self, rows: list[dict]) -> list[dict]:
        return [self.measure_one(row) for row in rows]

    def measure_one(self, row: dict) -> dict:
        raise NotImplementedError

    def error_rows(self, row: dict, exc: BaseException) -> list[dict]:
        return [failed(row, exc)]

    def decide_one(self, row: dict) -> dict:
        """keep/drop_reason of one measured row (decide_table on a table of one)."""
        return self.decide([dict(row, error=row.get("error"), drop_reason=row.get("drop_reason"))])[0]


def failed(row: dict, exc: BaseException) -> dict:
    out = dict(row)
    out.update(keep=False, drop_reason=getattr(exc, "drop_reason", "error"), error=error_text(exc))
    return out
