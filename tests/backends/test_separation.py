"""Offline separators on real clips of ../shared/media: where each kind of sound ends up."""
from __future__ import annotations

import numpy as np
import pytest

from demix_pipeline.backends.separation.dfn3 import DeepFilterNet3
from demix_pipeline.backends.separation.rnnoise import RNNoise
from demix_pipeline.config import load_config
from demix_pipeline.media.audio import ClipAudio
from demix_pipeline.mixtures import si_sdr
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
    """A's own split (raw levels), and gated the music stem stays above the effects stem."""
    for name in MUSIC:
        m = measure(stage, media, name)
        assert m["demix.a_music_raw_dbfs"] > m["demix.a_effects_raw_dbfs"], (name, m)
        assert m["demix.a_music_dbfs"] > m["demix.a_effects_dbfs"], (name, m)


def test_effects_clips_put_effects_above_music(stage, media):
    for name in EFFECTS:
        m = measure(stage, media, name)
        assert m["demix.a_effects_raw_dbfs"] > m["demix.a_music_raw_dbfs"], (name, m)
        assert m["demix.a_effects_dbfs"] >= -45 and m["demix.a_effects_dbfs"] > m["demix.a_music_dbfs"], (name, m)


def test_gating_silences_the_stems_where_their_kind_is_not_heard(stage, media):
    """Talking heads: A's split leaves residue in both stems (raw above -45 dB on some); gated, none is left."""
    for name in SPEECH[:3]:
        m = measure(stage, media, name)
        assert m["demix.a_music_dbfs"] < -45 and m["demix.a_effects_dbfs"] < -45, (name, m)
        assert m["demix.a_music_dbfs"] <= m["demix.a_music_raw_dbfs"] + 1e-6, (name, m)


_MODEL = None


def _speech_gain(args) -> tuple[float, str]:
    """SI-SDR improvement of A's speech stem (DeepFilterNet3 as the stage configures it) on one mixture."""
    global _MODEL
    atten_db, name, mixture, reference = args
    if _MODEL is None:
        _MODEL = DeepFilterNet3(atten_db)
    return si_sdr(_MODEL.enhance(mixture), reference) - si_sdr(mixture, reference), name


@pytest.fixture(scope="module")
def speech_gains(media) -> dict[str, list[tuple[float, str]]]:
    """A.speech SI-SDR improvement on every mixture of bench/separation.py (>= 6 speech recordings, each its
    8 s with most speech, x every music and effects background x 0 / +5 dB), split by the speech's half."""
    from concurrent.futures import ProcessPoolExecutor

    from demix_pipeline.backends.audio_events.yamnet import YamNetTagger
    from demix_pipeline.evaluation import tune_files
    from demix_pipeline.mixtures import background_recordings, mixtures, speech_recordings

    speech = speech_recordings(media, 48000, 8.0, tagger=YamNetTagger())
    backgrounds = background_recordings(media, 48000, 8.0)
    assert len(speech) >= 6 and {b.kind for b in backgrounds} == {"music", "effects"}
    atten = load_config().demix.a_speech_atten_db
    jobs = [(atten, m.name, m.mixture, m.speech) for m in mixtures(speech, backgrounds)]
    with ProcessPoolExecutor(2) as pool:
        gains = list(pool.map(_speech_gain, jobs, chunksize=8))
    tune = tune_files()
    halves: dict[str, list[tuple[float, str]]] = {"tune": [], "held_out": []}
    for gain, name in gains:
        halves["tune" if name.split("@")[0] in tune else "held_out"].append((gain, name))
    return halves


def test_a_speech_improves_the_bench_mixtures(speech_gains):
    """a_speech_atten_db (15 dB) was chosen on the tune half: every tune mixture improves there (measured worst
    +0.71 dB). Held out (measured): 96% improved, mean +7.0 dB, worst -0.65 dB (AMI dev01, a far-field meeting
    microphone whose reference keeps its room: removing it lowers SI-SDR against that reference)."""
    tune, held = speech_gains["tune"], speech_gains["held_out"]
    assert min(tune)[0] >= 0.0, sorted(tune)[:3]
    assert np.mean([g for g, _ in held]) >= 4.0
    assert np.mean([g >= 0 for g, _ in held]) >= 0.9, sorted(held)[:8]
    assert min(held)[0] >= -2.0, sorted(held)[:3]  # without the limit: -3.2 dB (and -21 dB on rap over a beat)


@pytest.mark.xfail(strict=True, reason="issue 14's target: every mixture improved; held out, 5 of 120 AMI dev01 "
                                       "mixtures lose up to 0.65 dB (see test_a_speech_improves_the_bench_mixtures)")
def test_a_speech_is_never_worse_than_the_mixture(speech_gains):
    assert min(speech_gains["tune"] + speech_gains["held_out"])[0] >= 0.0
