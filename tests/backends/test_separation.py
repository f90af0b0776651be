"""Offline separators on real clips of ../shared/media: where each kind of sound ends up."""
from __future__ import annotations

import numpy as np
import pytest

from demix_pipeline.backends.separation.dfn3 import DeepFilterNet3
from demix_pipeline.backends.separation.rnnoise import RNNoise
from demix_pipeline.config import load_config
from demix_pipeline.media.audio import ClipAudio
from demix_pipeline.stages.base import RunContext
from demix_pipeline.stages.demix import DemixStage

MUSIC = ["music/difffoley_drum.mp4", "music/liveportrait_d10_face_with_music.mp4",
         "music/vggsound_playing_bass_drum_-Qowmc0P9ic_34000_44000.mp4",
         "music/vggsound_playing_harp_6zlMP_kQ_-w_30000_40000.mp4", "music/moviepy_big_buck_bunny_0_30.webm"]
EFFECTS = ["sound_effects/activitynet_v_GGSY1Qvo990_weightlifting.mp4", "sound_effects/difffoley_car.mp4",
           "sound_effects/vas_dog_video_02677.mp4", "sound_effects/vas_fireworks_video_02997.mp4",
           "sound_effects/vas_hammer_video_00323.mp4", "sound_effects/vggsound_ripping_paper_53UdZyM9MyE_252000_262000.mp4",
           "sound_effects/vggsound_waterfall_burbling_7fRaV39Y-2o_50000_60000.mp4"]
SPEECH = ["talking_head_single/videoretalking_face_1.mp4", "talking_head_single/videoretalking_face_2.mp4",
          "talking_head_single/videoretalking_face_3.mp4", "talking_head_single/datajuicer_video5_woman_vertical.mp4",
          "talking_head_single/liveportrait_d11_child_speaking.mp4"]


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    st = DemixStage(load_config(), RunContext(out=tmp_path_factory.mktemp("demix")))
    st.setup()
    return st


def measure(stage, media, name, seconds=8.0):
    mixture = ClipAudio.load(media / name).at(48000)[: int(48000 * seconds)]
    return stage.measure_mixture(mixture)


def test_music_clips_put_music_above_effects(stage, media):
    for name in MUSIC:
        m = measure(stage, media, name)
        assert m["demix.a_music_dbfs"] > m["demix.a_effects_dbfs"], (name, m)


def test_effects_clips_put_effects_above_music(stage, media):
    for name in EFFECTS:
        m = measure(stage, media, name)
        assert m["demix.a_effects_dbfs"] > m["demix.a_music_dbfs"], (name, m)


def test_speech_dominant_clips_put_most_energy_in_speech(stage, media):
    """Measured floor: 4 of the 5 talking heads (the child's high voice partly lands in music)."""
    hits = 0
    for name in SPEECH:
        m = measure(stage, media, name)
        hits += m["demix.a_speech_dbfs"] > max(m["demix.a_music_dbfs"], m["demix.a_effects_dbfs"])
        assert m["demix.l1_speech"] < 0.35, name  # both speech models agree on speech
    assert hits >= 4


def test_silent_track_gives_silent_stems_and_every_pair(stage, media):
    m = measure(stage, media, "scenery_no_people/datajuicer_video11_great_wall_silent_track.mp4")
    for key in ("a_speech", "a_effects", "a_music", "b_speech", "b_others"):
        assert m[f"demix.{key}_dbfs"] < -45
    row = stage.decide_one(dict(m, error=None, keep=True, drop_reason=None))
    assert row["demix.pairs"] == "speech,others_effects,others_music" and row["keep"]


@pytest.mark.parametrize("cls, delay", [(DeepFilterNet3, 1440), (RNNoise, 960)])
def test_speech_models_improve_real_speech_in_music_and_are_aligned(cls, delay, media):
    speech = ClipAudio.load(media / "audio_only" / "videoretalking_speech_1.wav").at(48000)
    music = ClipAudio.load(media / "music" / "vggsound_playing_harp_6zlMP_kQ_-w_30000_40000.mp4").at(48000)[: len(speech)]
    music = music * np.sqrt(np.mean(speech ** 2) / np.mean(music ** 2))
    mixture = (speech + music).astype(np.float32)
    model = cls()
    assert model.delay == delay
    estimate = model.enhance(mixture)
    assert len(estimate) == len(mixture)

    def si_sdr(est, ref):
        target = np.dot(est, ref) / np.dot(ref, ref) * ref
        return 10 * np.log10(np.sum(target ** 2) / np.sum((est - target) ** 2))

    assert si_sdr(estimate, speech) > si_sdr(mixture, speech) + 1.0
    lags = range(-200, 201, 10)
    best = max(lags, key=lambda lag: np.dot(np.roll(estimate, -lag)[:96000], speech[:96000]))
    assert abs(best) <= 10  # realigned: the delay is removed
