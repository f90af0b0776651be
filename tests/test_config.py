"""Config layering and errors: defaults <- stages/*.yaml <- --config FILE <- --set."""
from __future__ import annotations

import pytest

from demix_pipeline.config import ConfigError, load_config


def test_stage_yaml_is_read(tmp_path):
    (tmp_path / "shots.yaml").write_text("min_clip_s: 3.0\ndetector:\n  demix:\n    cut_ratio: 4.0\n")
    cfg = load_config(stages_dir=tmp_path)
    assert cfg.shots.min_clip_s == 3.0 and cfg.shots.detector.demix.cut_ratio == 4.0
    assert cfg.shots.max_clip_s == 20.0  # untouched keys keep their defaults


def test_layers_override_in_order(tmp_path):
    (tmp_path / "shots.yaml").write_text("min_clip_s: 3.0\nmax_clip_s: 30\n")
    run_config = tmp_path / "run.yaml"
    run_config.write_text("shots:\n  min_clip_s: 4.0\nrun:\n  num_cpus: 1\n")
    cfg = load_config(run_config, ["shots.min_clip_s=5"], stages_dir=tmp_path)
    assert cfg.shots.min_clip_s == 5.0 and cfg.shots.max_clip_s == 30 and cfg.run.num_cpus == 1


def test_repository_yaml_matches_the_models():
    cfg = load_config()
    assert cfg.shots.detector.name == "fused" and cfg.ingest.require_audio


@pytest.mark.parametrize("override, message", [
    ("shots.min_clip_length=2", "unknown key 'shots.min_clip_length' (from --set)"),
    ("nosuchstage.x=1", "unknown key 'nosuchstage'"),
    ("shots.min_clip_s=abc", "bad value for 'shots.min_clip_s' (got 'abc')"),
    ("shots.detector.name=fancy", "bad value for 'shots.detector.name'"),
    ("shots.resources.num_cpus=-1", "bad value for 'shots.resources.num_cpus'"),
    ("shots.min_clip_s=50", "min_clip_s (50.0) is larger than max_clip_s"),
    ("novalue", "expected key=value"),
])
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    assert message in str(info.value)


def test_unknown_key_in_a_config_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("shots:\n  detector:\n    treshold: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'shots.detector.treshold' \(from .*bad.yaml\)"):
        load_config(path)


def test_decide_fields_do_not_change_the_measure_fingerprint():
    base = load_config()
    assert base.fingerprint("shots", "measure") == load_config(overrides=["shots.min_clip_s=5"]).fingerprint("shots", "measure")
    assert base.fingerprint("shots", "decide") != load_config(overrides=["shots.min_clip_s=5"]).fingerprint("shots", "decide")
    assert base.fingerprint("shots", "measure") != load_config(overrides=["shots.trim_frames=0"]).fingerprint("shots", "measure")


def test_only_the_chosen_detectors_sections_are_measure_config():
    base = load_config().shots.measure_dict()
    assert load_config(overrides=["shots.detector.content.threshold=30"]).shots.measure_dict() == base
    assert load_config(overrides=["shots.detector.transnetv2.threshold=0.6"]).shots.measure_dict() != base
    demix_only = load_config(overrides=["shots.detector.name=demix"]).shots
    assert load_config(overrides=["shots.detector.name=demix", "shots.detector.fused.candidate_ratio=2"]
                       ).shots.measure_dict() == demix_only.measure_dict()
