"""Reference separator B: Spleeter 2stems in its own venv, as a worker process beside the stage's process.

The checkpoint is random (built in the test, in Spleeter's model-folder layout): this proves the
isolated-venv plumbing, not quality. `make test` builds the venv (make spleeter-env).
"""
from __future__ import annotations

import os
import subprocess

import pytest

from demix_pipeline.backends.separation.spleeter_ref import REPO_ROOT, spleeter_python
from demix_pipeline.config import load_config
from demix_pipeline.media.audio import ClipAudio
from demix_pipeline.stages.base import RunContext
from demix_pipeline.stages.demix import DemixStage


@pytest.fixture(scope="module")
def spleeter_store(tmp_path_factory):
    try:
        python = spleeter_python()
    except FileNotFoundError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    store = tmp_path_factory.mktemp("store")
    proc = subprocess.run([str(python), "-m", "demix_pipeline.backends.separation.spleeter_worker", "make-checkpoint",
                           str(store / "spleeter_2stems")], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"params.json", "checkpoint", "model.index", ".probe"} <= {p.name for p in (store / "spleeter_2stems").iterdir()}
    return store


def test_spleeter_runs_in_its_own_venv_inside_the_stage(spleeter_store, media, tmp_path):
    cfg = load_config(overrides=["demix.separator_b=reference", f"run.models_dir={spleeter_store}"])
    stage = DemixStage(cfg, RunContext(out=tmp_path, models_dir=cfg.run.models_dir))
    stage.setup()
    assert stage.sep_b.rate == 44100 and stage.sep_b.stems == ("vocals", "accompaniment")
    audio = ClipAudio.load(media / "talking_head_single" / "videoretalking_face_2.mp4")
    measured = stage.measure_audio(audio)
    assert measured["demix.b_speech_dbfs"] > -120.0 and measured["demix.b_others_dbfs"] > -120.0
    assert measured["demix.l1_speech"] >= 0
    assert "reference-B: spleeter model spleeter_2stems" in stage.backends()["demix"]
    import psutil  # the worker is this process's child: audio never leaves the machine that measures

    assert psutil.Process(stage.sep_b._proc.pid).ppid() == os.getpid()
    again = stage.measure_audio(audio)  # the same worker answers the next clip
    assert again["demix.b_speech_dbfs"] == pytest.approx(measured["demix.b_speech_dbfs"], abs=1e-6)

    from demix_pipeline import row_deadline

    first_worker = stage.sep_b._proc
    # a row past its deadline: the worker is stopped, a fresh one takes the next row
    with row_deadline.row_time(1e-6), pytest.raises(row_deadline.RowTimeout, match="while separating with Spleeter"):
        stage.sep_b.separate(audio.at(44100))
    assert first_worker.poll() is not None and stage.sep_b._proc.poll() is None
    after = stage.measure_audio(audio)
    assert after["demix.b_speech_dbfs"] == pytest.approx(measured["demix.b_speech_dbfs"], abs=1e-6)


def test_missing_spleeter_model_is_a_clear_error(tmp_path):
    cfg = load_config(overrides=["demix.separator_b=reference", f"run.models_dir={tmp_path}"])
    stage = DemixStage(cfg, RunContext(out=tmp_path, models_dir=cfg.run.models_dir))
    with pytest.raises(FileNotFoundError, match="model 'spleeter_2stems' is not in the model store"):
        stage.setup()


def test_a_store_filled_on_another_machine_loads_from_where_it_is(spleeter_store, media, tmp_path):
    import json
    import shutil

    moved = tmp_path / "cluster_store"
    shutil.copytree(spleeter_store, moved)
    params_path = moved / "spleeter_2stems" / "params.json"
    params = json.loads(params_path.read_text())
    params["model_dir"] = "/nonexistent/connected_machine/models/spleeter_2stems"  # where it was fetched
    params_path.write_text(json.dumps(params))
    cfg = load_config(overrides=["demix.separator_b=reference", f"run.models_dir={moved}"])
    stage = DemixStage(cfg, RunContext(out=tmp_path, models_dir=cfg.run.models_dir))
    stage.setup()
    measured = stage.measure_audio(ClipAudio.load(media / "talking_head_single" / "videoretalking_face_2.mp4"))
    assert measured["demix.b_speech_dbfs"] > -120.0
    assert json.loads(params_path.read_text())["model_dir"].startswith("/nonexistent")  # the store is not modified
