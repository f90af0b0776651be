"""Model store resolution: local folders only, clear errors naming the model and the fix."""
from __future__ import annotations

import pytest

from demix_pipeline.models import ModelNotFoundError, resolve_model


def test_resolves_a_present_model(tmp_path):
    (tmp_path / "htdemucs_dnr").mkdir()
    (tmp_path / "htdemucs_dnr" / "model.th").write_bytes(b"x")
    assert resolve_model("htdemucs_dnr", tmp_path, ("model.th",)) == tmp_path / "htdemucs_dnr"


def test_env_variable_is_the_default_store(tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    monkeypatch.setenv("DEMIX_MODELS", str(tmp_path))
    assert resolve_model("m") == tmp_path / "m"


def test_missing_store_model_and_file_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("DEMIX_MODELS", raising=False)
    with pytest.raises(ModelNotFoundError, match="no model store is configured: set DEMIX_MODELS"):
        resolve_model("yolo11n")
    with pytest.raises(ModelNotFoundError, match=r"model 'yolo11n' is not in the model store .*demix models fetch yolo11n"):
        resolve_model("yolo11n", tmp_path)
    (tmp_path / "yolo11n").mkdir()
    with pytest.raises(ModelNotFoundError, match="lacks weights.pt"):
        resolve_model("yolo11n", tmp_path, ("weights.pt",))


def test_telemetry_and_hub_lookups_are_off_by_default():
    import os

    import demix_pipeline  # noqa: F401

    for name, value in {"HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1", "ORT_DISABLE_TELEMETRY": "1",
                        "PYANNOTE_METRICS_ENABLED": "0", "RAY_USAGE_STATS_ENABLED": "0"}.items():
        assert os.environ.get(name) == value, name
