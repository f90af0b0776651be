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
"""
from __future__ import annotations

import numpy as np

from demix_pipeline.backends.quality.dnsmos import Dnsmos
from demix_pipeline.backends.vad.silero_onnx import SileroVAD
from demix_pipeline.media import levels
from demix_pipeline.media.audio import ClipAudio
from demix_pipeline.stages.base import ClipStage, ModelUse

VAD_RATE = 16000


class AudioQualityStage(ClipStage):
    name = "audio_quality"
    uses_model = True
    model_uses = (ModelUse("backend", "aes_model", ("checkpoint.pt",)),)

    def setup(self) -> None:
        cfg = self.cfg
        if cfg.backend == "reference":
            from demix_pipeline.backends.quality.audiobox import AudioboxAesthetics

            folder = self.model_folder(cfg.aes_model)
            self.aes = AudioboxAesthetics(folder / "checkpoint.pt", cfg.aes_precision, cfg.resources.batch_size)
        else:
            self.vad = SileroVAD(threshold=cfg.vad_threshold)
            self.dnsmos = Dnsmos(hop_s=cfg.dnsmos_hop_s)

    def backends(self) -> dict[str, str]:
        from importlib import metadata

        if self.cfg.backend == "reference":
            return {"audio_quality": f"reference: audiobox-aesthetics {metadata.version('audiobox-aesthetics')} "
                                     f"(model store: {self.cfg.aes_model}) + signal measures"}
        return {"audio_quality": f"offline: DNSMOS (speechmos {metadata.version('speechmos')}) on silero VAD "
                                 f"{metadata.version('silero-vad')} speech + signal measures"}

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
            measured = dict(row, **self.signal_measures(audio))
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
        segments = self.vad.segments(speech16k)
        speech_s = sum(s.end_s - s.start_s for s in segments)
        scores = None
        if speech_s >= cfg.min_speech_s:
            speech = np.concatenate([speech16k[int(s.start_s * VAD_RATE):int(s.end_s * VAD_RATE)] for s in segments])
            scores = self.dnsmos.score(speech)
        prefix = "audio_quality."
        return {
            **self.signal_measures(audio),
            prefix + "speech_s": speech_s,
            prefix + "speech_ratio": speech_s / audio.duration_s if audio.duration_s else 0.0,
            prefix + "dnsmos_sig": scores.sig if scores else None,
            prefix + "dnsmos_bak": scores.bak if scores else None,
            prefix + "dnsmos_ovrl": scores.ovrl if scores else None,
            prefix + "dnsmos_p808": scores.p808 if scores else None,
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

    def decide_one(self, row: dict) -> dict:
        cfg, p = self.cfg, "audio_quality."
        reason = None
        if row[p + "rms_dbfs"] < cfg.min_rms_dbfs:
            reason = "silent"
        elif row[p + "silence_ratio"] > cfg.max_silence_ratio:
            reason = "mostly_silent"
        elif row[p + "clipping_ratio"] > cfg.max_clipping_ratio:
            reason = "clipped"
        elif row[p + "bandwidth_hz"] < cfg.min_bandwidth_hz:
            reason = "low_bandwidth"
        elif any(_below(row.get(f"{p}aes_{axis}"), getattr(cfg, f"min_aes_{axis}")) for axis in ("ce", "cu", "pc", "pq")):
            reason = "low_aesthetics"
        elif self._dnsmos_applies(row) and (_below(row[p + "dnsmos_sig"], cfg.min_dnsmos_sig)
                                            or _below(row[p + "dnsmos_ovrl"], cfg.min_dnsmos_ovrl)):
            reason = "low_speech_quality"
        row["keep"], row["drop_reason"] = reason is None, reason
        return row

    def _dnsmos_applies(self, row: dict) -> bool:
        """DNSMOS judges the speech only in speech-dominant clips with a clean background."""
        p = "audio_quality."
        return (row[p + "dnsmos_bak"] is not None and row[p + "speech_ratio"] >= self.cfg.dnsmos_min_speech_ratio
                and row[p + "dnsmos_bak"] >= self.cfg.dnsmos_min_bak)


def _below(value: float | None, floor: float | None) -> bool:
    return value is not None and floor is not None and value < floor
