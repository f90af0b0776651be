"""Shared audio path: one decode, cached resampling, channel rules, signal levels."""
from __future__ import annotations

import numpy as np
import pytest

from demix_pipeline.media import levels
from demix_pipeline.media.audio import AudioDecodeError, ClipAudio
from tests.conftest import ffmpeg


def test_decode_once_resample_once(media):
    audio = ClipAudio.load(media / "audio_only" / "videoretalking_speech_1.wav")
    assert audio.rate == 44100 and audio.samples.shape[0] == 2
    first = audio.at(16000)
    assert audio.at(16000) is first  # cached: resampled once
    assert len(first) == pytest.approx(audio.duration_s * 16000, abs=2)
    assert audio.at(16000, mono=False).shape[0] == 2


def test_surround_is_averaged_for_mono_and_downmixed_for_stereo(tmp_path):
    path = tmp_path / "six.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:duration=1", "-af", "pan=5.1|c0=c0|c1=0*c0|c2=0*c0|c3=0*c0|c4=0*c0|c5=0*c0",
           str(path))
    six = ClipAudio.load(path)
    assert six.samples.shape[0] == 6 and six.layout == "5.1"
    # only front-left carries the tone: the mono mix is its sixth
    assert levels.rms_dbfs(six.at(six.rate)) == pytest.approx(levels.rms_dbfs(six.samples[0]) + 20 * np.log10(1 / 6), abs=0.2)
    stereo = ClipAudio.load(path, stereo=True)
    assert stereo.samples.shape[0] == 2 and np.abs(stereo.samples[0]).max() > 10 * np.abs(stereo.samples[1]).max()


def test_no_audio_is_a_clear_error(media):
    with pytest.raises(AudioDecodeError, match="no audio stream"):
        ClipAudio.load(media / "scenery_no_people" / "datajuicer_video10_plant_no_audio.mp4")


def test_levels_on_known_signals():
    rate = 48000
    t = np.arange(rate * 2) / rate
    sine = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)  # peak -6 dBFS, RMS -9 dBFS
    assert levels.peak_dbfs(sine) == pytest.approx(-6.02, abs=0.01)
    assert levels.rms_dbfs(sine) == pytest.approx(-9.03, abs=0.01)
    assert levels.loudness_lufs(np.stack([sine, sine]), rate) == pytest.approx(-6.0, abs=0.5)  # BS.1770: 1 kHz, 2 ch
    assert levels.clipping_ratio(np.clip(sine * 4, -1, 1)) > 0.5 and levels.clipping_ratio(sine) == 0
    assert levels.bandwidth_hz(sine, rate) == pytest.approx(1000, abs=150)  # window leakage + smoothing
    half = np.concatenate([sine[:rate], np.zeros(rate, np.float32)])
    assert levels.silence_ratio(half, rate) == pytest.approx(0.5, abs=0.02)
    silence = np.zeros(rate, np.float32)
    assert levels.rms_dbfs(silence) == levels.FLOOR_DB and levels.loudness_lufs(silence, rate) == levels.FLOOR_DB
    assert levels.bandwidth_hz(silence, rate) == 0.0


def test_damaged_audio_keeps_its_time_and_says_what_was_lost(media, tmp_path):
    from tests.stages.test_shots import damage

    source = media / "talking_head_single" / "videoretalking_face_2.mp4"
    damage(source, tmp_path / "damaged.mp4")
    clean, hurt = ClipAudio.load(source), ClipAudio.load(tmp_path / "damaged.mp4")
    assert clean.decode.errors == 0 and clean.real_fraction == 1.0
    assert hurt.decode.errors > 0 and 0.5 < hurt.real_fraction < 1.0
    assert abs(hurt.duration_s - clean.duration_s) < 0.05  # lost packets come back as silence, in place
    tail = slice(clean.samples.shape[1] - int(0.2 * clean.rate), clean.samples.shape[1])  # after the damage
    assert hurt.decode.lost[-1][1] < 0.9 * clean.duration_s
    assert np.allclose(hurt.samples[:, tail], clean.samples[:, tail], atol=1e-4)  # later audio keeps its time
