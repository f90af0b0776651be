"""Reference captioner with tiny random LLaVA-OneVision and Qwen2-VL models built here (plumbing, not text quality)."""
from __future__ import annotations

import pytest

from demix_pipeline.config import load_config
from demix_pipeline.stages.base import RunContext
from demix_pipeline.stages.caption import CaptionStage
from tests.backends.tiny_models import build_tiny_llava_onevision, build_tiny_qwen2_vl

BUILDERS = {"llava_onevision": build_tiny_llava_onevision, "qwen2_vl": build_tiny_qwen2_vl}


@pytest.fixture(scope="module")
def talking_head_row(late_stages_run):
    rows = [r for r in late_stages_run["rows"]("caption")
            if r["video_path"].startswith("talking_head_single/") and r["caption.structure"]["active_speaker"]]
    row = rows[0]
    return {k: v for k, v in row.items() if k not in ("video_path", "label")}


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_reference_captioner_runs_the_real_load_and_generate_path(family, tmp_path, talking_head_row, late_stages_run):
    store = tmp_path / "models"
    BUILDERS[family](store / "video_llm")
    overrides = [f"run.models_dir={store}", "caption.backend=reference", "caption.max_new_tokens=6",
                 "caption.frames_per_clip=3", "caption.crop_size=48", "caption.person_prompt=Who is this person?"]
    cfg = load_config(overrides=overrides)
    stage = CaptionStage(cfg, RunContext(late_stages_run["out"], models_dir=cfg.run.models_dir))
    stage.setup()
    out = stage.measure_one(dict(talking_head_row))
    structure = out["caption.structure"]
    # structure, ids and speaker come from the pipeline; the descriptions from the model (noise here)
    assert structure["active_speaker"] == "Person1" and len(structure["persons"]) == 1
    assert out["caption.text"].startswith(structure["participants"] + " Person1: ")
    assert "Active speaker: Person1." in out["caption.text"]
    assert out["caption.captioner"] == "reference"
    # prompt and sampling settings reached the backend
    request = stage.llm.last_request
    assert "Who is this person?" in request["person_prompt"] and request["scene_frames"] == 3
    assert request["crops"] == 1 and request["crop_size"] == 48
    again = stage.measure_one(dict(talking_head_row))
    assert again["caption.text"] == out["caption.text"]  # greedy: same clip, same text
    # a batch of clips goes through the model together; each clip keeps its own persons and scene
    together = stage.measure([dict(talking_head_row), dict(talking_head_row)])
    assert stage.llm.last_request["clips"] == 2 and stage.llm.last_request["crops"] == 2
    assert [r["caption.text"] for r in together] == [out["caption.text"]] * 2


def test_missing_model_names_the_store_folder(tmp_path):
    from demix_pipeline.models import ModelNotFoundError

    cfg = load_config(overrides=[f"run.models_dir={tmp_path}", "caption.backend=reference"])
    with pytest.raises(ModelNotFoundError, match="video_llm"):
        CaptionStage(cfg, RunContext(tmp_path, models_dir=cfg.run.models_dir)).setup()
