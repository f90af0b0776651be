"""The offline separators of the dual-demixing cross-check, built from models that ship in wheels.

A (three stems): DeepFilterNet3 speech; the residual split into music and effects by HPSS with a
rhythm/tonal rule. B (two stems): RNNoise speech, and the mixture minus it. The two speech models
are independent (different architectures and training), so their agreement means something.
Each `separate()` returns its native stems by name; the stage maps them to the recipe's names.
"""
from __future__ import annotations

import numpy as np

from demix_pipeline.backends.separation.dfn3 import DeepFilterNet3
from demix_pipeline.backends.separation.residual_split import HarmonicPercussiveSplitter
from demix_pipeline.backends.separation.rnnoise import RNNoise

RATE = 48000


class OfflineSeparatorA:
    stems = ("deepfilternet3", "hpss_music", "hpss_effects")
    rate = RATE
    channels = 1

    def __init__(self, margin: float = 2.0, rhythm_threshold: float = 0.4, tonal_margin_db: float = 10.0,
                 atten_lim_db: float = 100.0):
        self.speech_model = DeepFilterNet3(atten_lim_db)
        self.splitter = HarmonicPercussiveSplitter(margin=margin, rhythm_threshold=rhythm_threshold,
                                                   tonal_margin_db=tonal_margin_db)
        self.name = f"offline-A: {self.speech_model.name} {self.speech_model.version} + {self.splitter.name} ({self.splitter.version})"
        self.last_split = None

    def separate(self, mono: np.ndarray) -> dict[str, np.ndarray]:
        speech = self.speech_model.enhance(mono)
        split = self.splitter.split(mono - speech, self.rate)
        self.last_split = split
        return {"deepfilternet3": speech, "hpss_music": split.music, "hpss_effects": split.effects}


class OfflineSeparatorB:
    stems = ("rnnoise", "residual")
    rate = RATE
    channels = 1

    def __init__(self):
        self.speech_model = RNNoise()
        self.name = f"offline-B: {self.speech_model.name} {self.speech_model.version} + residual"

    def separate(self, mono: np.ndarray) -> dict[str, np.ndarray]:
        speech = self.speech_model.enhance(mono)
        return {"rnnoise": speech, "residual": mono - speech}
