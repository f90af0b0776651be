"""One module per stage, each a Stage with measure() and decide()."""
from __future__ import annotations

from demix_pipeline.stages.base import RowError, RunContext, Stage


def stage_class(name: str) -> type[Stage]:
    if name == "ingest":
        from demix_pipeline.stages.ingest import IngestStage

        return IngestStage
    if name == "shots":
        from demix_pipeline.stages.shots import ShotsStage

        return ShotsStage
    if name == "audio_quality":
        from demix_pipeline.stages.audio_quality import AudioQualityStage

        return AudioQualityStage
    if name == "demix":
        from demix_pipeline.stages.demix import DemixStage

        return DemixStage
    if name == "voiceover":
        from demix_pipeline.stages.voiceover import VoiceoverStage

        return VoiceoverStage
    if name == "caption":
        from demix_pipeline.stages.caption import CaptionStage

        return CaptionStage
    if name == "assign":
        from demix_pipeline.stages.assign import AssignStage

        return AssignStage
    raise KeyError(f"stage '{name}' is not implemented yet (implemented: {', '.join(IMPLEMENTED)})")


IMPLEMENTED = ("ingest", "shots", "audio_quality", "demix", "voiceover", "caption", "assign")

__all__ = ["IMPLEMENTED", "RowError", "RunContext", "Stage", "stage_class"]
