"""Benchmark the offline separators on mixtures of real recordings found in a media folder like ../shared/media.

Recordings come from the folder's layout (demix_pipeline/mixtures.py): speech from the RTTM'd
recordings, the labelled speech-only shots and audio_only/, each its 8 s window with most speech,
left out when the audio event tagger hears music, singing or other sounds in it; music from the
stems/ folders (instrumental: the stems without vocals) and labelled music-only shots; effects from
labelled effects-only shots. Each speech is mixed with each background at 0 dB and +5 dB
speech-to-background (48 kHz mono). Prints SI-SDR improvement over the mixture of each stem (mean,
min, fraction improved) per background kind, realtime factors per separator (one core), and,
with --stage, the demix stage's realtime factor on this machine's cores through the runner.

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

from demix_pipeline.backends.audio_events.yamnet import YamNetTagger
from demix_pipeline.backends.separation.offline import OfflineSeparatorA, OfflineSeparatorB
from demix_pipeline.evaluation import label_rows
from demix_pipeline.mixtures import background_recordings, mixtures, si_sdr, speech_recordings

DEFAULT_MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"
RATE = 48000
SECONDS = 8.0


def stage_realtime(media: Path) -> float:
    from demix_pipeline.config import load_config
    from demix_pipeline.manifest import read_stage, stage_dir
    from demix_pipeline.runner import run_stage
    from demix_pipeline.stages.ingest import collect_sources

    cfg = load_config(overrides=["run.progress=false", "shots.encode.preset=ultrafast"])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        inputs = sorted({str(media / row["video_path"]) for row in label_rows(media)})  # every labelled video
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
    rejected: list[str] = []
    speech = speech_recordings(args.media, RATE, SECONDS, tagger=YamNetTagger(), rejected=rejected)
    backgrounds = background_recordings(args.media, RATE, SECONDS)
    from demix_pipeline.config import load_config

    cfg = load_config().demix
    sep_a = OfflineSeparatorA(cfg.hpss_margin, cfg.rhythm_threshold, cfg.tonal_margin_db, cfg.a_speech_atten_db)
    sep_b = OfflineSeparatorB()
    sep_a.separate(np.zeros(RATE, np.float32))  # warm-up (librosa JIT)
    results: dict[str, list[float]] = {}
    time_a = time_b = 0.0
    count = 0
    worst = (np.inf, "")
    for mix in mixtures(speech, backgrounds):
        t = time.perf_counter()
        a = sep_a.separate(mix.mixture)
        time_a += time.perf_counter() - t
        t = time.perf_counter()
        b = sep_b.separate(mix.mixture)
        time_b += time.perf_counter() - t
        count += 1
        base_s, base_b = si_sdr(mix.mixture, mix.speech), si_sdr(mix.mixture, mix.background)
        a_background = a["hpss_music"] if mix.kind == "music" else a["hpss_effects"]
        gain_a = si_sdr(a["deepfilternet3"], mix.speech) - base_s
        worst = min(worst, (gain_a, mix.name))
        for key, value in ((f"A.speech.{mix.kind}", gain_a), (f"B.speech.{mix.kind}", si_sdr(b["rnnoise"], mix.speech) - base_s),
                           (f"A.{mix.kind}.{mix.kind}", si_sdr(a_background, mix.background) - base_b),
                           (f"B.others.{mix.kind}", si_sdr(b["residual"], mix.background) - base_b)):
            results.setdefault(key, []).append(value)
    figures: dict = {}
    for key, values in sorted(results.items()):
        v = np.asarray(values)
        figures[f"separation.{key}.sisdri_mean_db"] = round(float(v.mean()), 2)
        figures[f"separation.{key}.sisdri_min_db"] = round(float(v.min()), 2)
        figures[f"separation.{key}.improved_frac"] = round(float((v >= 0).mean()), 3)
    audio_s = count * SECONDS
    figures.update({
        "separation.speech_recordings": len(speech), "separation.backgrounds": len(backgrounds), "separation.mixtures": count,
        "separation.A.realtime_1core": round(audio_s / time_a, 1), "separation.B.realtime_1core": round(audio_s / time_b, 1),
    })
    if args.stage:
        figures["separation.demix_stage_realtime"] = round(stage_realtime(args.media), 1)
    report([f"offline separators on {count} mixtures of real recordings ({SECONDS:.0f} s each) from {args.media}",
            f"A = {sep_a.name}, attenuation limit {cfg.a_speech_atten_db:g} dB", f"B = {sep_b.name}",
            "speech: " + ", ".join(r.name for r in speech), "backgrounds: " + ", ".join(r.name for r in backgrounds),
            "speech left out (the tagger hears more than speech): " + (", ".join(rejected) or "none"),
            f"worst A.speech mixture: {worst[1]} ({worst[0]:+.2f} dB)"], figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
