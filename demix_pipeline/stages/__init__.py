"""One module per stage, each a Stage with measure() and decide()."""
from __future__ import annotations

import importlib

from demix_pipeline.stages.base import RowError, RunContext, Stage

# stage name -> class, imported on first use (a stage's backends load only when it runs)
_CLASSES = {
    "ingest": "ingest:IngestStage",
    "shots": "shots:ShotsStage",
    "audio_quality": "audio_quality:AudioQualityStage",
    "demix": "demix:DemixStage",
    "voiceover": "voiceover:VoiceoverStage",
    "caption": "caption:CaptionStage",
    "assign": "assign:AssignStage",
}

IMPLEMENTED = tuple(_CLASSES)


def stage_class(name: str) -> type[Stage]:
    if name not in _CLASSES:
        raise KeyError(f"stage '{name}' is not implemented (stages: {', '.join(IMPLEMENTED)})")
    module, cls = _CLASSES[name].split(":")
    return getattr(importlib.import_module(f"demix_pipeline.stages.{module}"), cls)


__all__ = ["IMPLEMENTED", "RowError", "RunContext", "Stage", "stage_class"]
