"""Benchmark the offline separators on mixtures of real recordings from a media folder like ../shared/media.

Speech: audio_only/videoretalking_speech_1.wav, diarization/pyannote_sample.wav (from 6.7 s),
diarization/ami_excerpts/dev00.wav. Music: the MUSDB18 sample without vocals (bass + drums + other)
and the harp clip. Effects: dog, fireworks, waterfall clips. Each speech is mixed with each
background at 0 dB and +5 dB speech-to-background (8 s, 48 kHz mono). Prints SI-SDR of each stem
and its improvement over the mixture, realtime factors per separator (one core), and, with
--stage, the demix stage's realtime factor on this machine's cores through the runner.

    python bench/separation.py [--media DIR] [--json FILE] [--stage]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _report import report

from demix_pipeline.backends.separation.offline import OfflineSeparatorA, OfflineSeparatorB
from demix_pipeline.media.audio import ClipAudio

DEFAULT_MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"
RATE = 48000
SECONDS = 8.0


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    target = np.dot(estimate, reference) / (np.dot(reference, reference) + 1e-12) * reference
    return float(10 * np.log10((np.sum(target ** 2) + 1e-12) / (np.sum((estimate - target) ** 2) + 1e-12)))


def load(media: Path, name: str, start_s: float = 0.0) -> np.ndarray:
    audio = ClipAudio.load(media / name).at(RATE)
    segment = audio[int(start_s * RATE):int((start_s + SECONDS) * RATE)]
    return np.pad(segment, (0, max(0, int(SECONDS * RATE) - len(segment))))


def sources(media: Path):
    speech = {"speech_1": load(media, "audio_only/videoretalking_speech_1.wav"),
              "pyannote": load(media, "diarization/pyannote_sample.wav", 6.7),
              "ami_dev00": load(media, "diarization/ami_excerpts/dev00.wav", 2.0)}
    stems = "stems/musdb18_sample/Music_Delta_80s_Rock_"
    music = {"musdb_no_vocals": sum(load(media, f"{stems}{s}.wav") for s in ("bass", "drums", "other")),
             "harp": load(media, "music/vggsound_playing_harp_6zlMP_kQ_-w_30000_40000.mp4")}
    effects = {"dog": load(media, "sound_effects/vggsound_dog_barking_3qesirWAGt4_20000_30000.mp4"),
               "fireworks": load(media, "sound_effects/vas_fireworks_video_02997.mp4"),
               "waterfall": load(media, "sound_effects/vggsound_waterfall_burbling_7fRaV39Y-2o_50000_60000.mp4")}
    return speech, music, effects


def stage_realtime(media: Path) -> float:
    from demix_pipeline.config import load_config
    from demix_pipeline.manifest import read_stage, stage_dir
    from demix_pipeline.runner import run_stage
    from demix_pipeline.stages.ingest import collect_sources

    cfg = load_config(overrides=["run.progress=false", "shots.encode.preset=ultrafast"])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        inputs = [str(media / f) for f in ("music", "sound_effects", "talking_head_single", "multi_person_dialogue")]
        run_stage("ingest", cfg, out, sources=collect_sources(inputs, "cinematic", cfg.ingest.extensions))
        for stage in ("shots", "audio_quality", "demix"):
            run_stage(stage, cfg, out)
        rows = [r for r in read_stage(out, "demix").to_pylist() if r["demix.l1_speech"] is not None]
        seconds = sum(r["shots.duration_s"] for r in rows)
        return seconds / json.loads((stage_dir(out, "demix") / "_stage.json").read_text())["measure_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--stage", action="store_true", help="also time the demix stage through the runner")
    args = parser.parse_args()
    speech, music, effects = sources(args.media)
    sep_a, sep_b = OfflineSeparatorA(), OfflineSeparatorB()
    sep_a.separate(np.zeros(RATE, np.float32))  # warm-up (librosa JIT)
    results: dict[str, list[float]] = {}
    time_a = time_b = 0.0
    mixtures = 0
    for kind, backgrounds in (("music", music), ("effects", effects)):
        for s_name, s in speech.items():
            for b_name, b in backgrounds.items():
                for snr in (0, 5):
                    gain = np.sqrt(np.mean(s ** 2) / (np.mean(b ** 2) + 1e-12)) * 10 ** (-snr / 20)
                    bg = (b * gain).astype(np.float32)
                    mix = (s + bg).astype(np.float32)
                    peak = max(1.0, float(np.abs(mix).max()) / 0.99)
                    mix, ref_s, ref_b = mix / peak, s / peak, bg / peak
                    t = time.perf_counter()
                    a = sep_a.separate(mix)
                    time_a += time.perf_counter() - t
                    t = time.perf_counter()
                    b_out = sep_b.separate(mix)
                    time_b += time.perf_counter() - t
                    mixtures += 1
                    base_s, base_b = si_sdr(mix, ref_s), si_sdr(mix, ref_b)
                    a_bg = a["hpss_music"] if kind == "music" else a["hpss_effects"]
                    for key, value in (
                        (f"A.speech_sisdri.{kind}", si_sdr(a["deepfilternet3"], ref_s) - base_s),
                        (f"B.speech_sisdri.{kind}", si_sdr(b_out["rnnoise"], ref_s) - base_s),
                        (f"A.{kind}_sisdri", si_sdr(a_bg, ref_b) - base_b),
                        (f"A.{kind}_sisdr", si_sdr(a_bg, ref_b)),
                        (f"B.others_sisdri.{kind}", si_sdr(b_out["residual"], ref_b) - base_b),
                        (f"A.speech_sisdr.{kind}", si_sdr(a["deepfilternet3"], ref_s)),
                        (f"mixture_speech_sisdr.{kind}", base_s),
                    ):
                        results.setdefault(key, []).append(value)
    audio_s = mixtures * SECONDS
    figures = {f"separation.{k}_mean_db": round(float(np.mean(v)), 2) for k, v in sorted(results.items())}
    figures.update({
        "separation.A.speech_sisdri_min_db": round(min(min(results["A.speech_sisdri.music"]), min(results["A.speech_sisdri.effects"])), 2),
        "separation.mixtures": mixtures,
        "separation.A.realtime_1core": round(audio_s / time_a, 1),
        "separation.B.realtime_1core": round(audio_s / time_b, 1),
    })
    if args.stage:
        figures["separation.demix_stage_realtime"] = round(stage_realtime(args.media), 1)
    report([f"offline separators on {mixtures} mixtures of real recordings ({SECONDS:.0f} s each) from {args.media}",
            f"A = {sep_a.name}", f"B = {sep_b.name}"], figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
