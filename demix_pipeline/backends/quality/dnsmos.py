"""DNSMOS P.835 (SIG, BAK, OVRL) and P.808 from the ONNX models inside the speechmos wheel.

speechmos scores 9.01 s windows every 1 s (about 0.1 s of compute per second of audio); here
the hop is configurable (default 4.5 s, half-overlapping windows). Audio shorter than a window
is repeated to fill it, as speechmos does. Input: 16 kHz mono in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

import numpy as np

from demix_pipeline import row_deadline

RATE = 16000
WINDOW_S = 9.01


@dataclass(frozen=True)
class DnsmosScores:
    sig: float
    bak: float
    ovrl: float
    p808: float


class Dnsmos:
    name = "dnsmos-speechmos"

    def __init__(self, hop_s: float = 4.5):
        try:
            from speechmos import dnsmos
        except ImportError as exc:
            raise RuntimeError(f"DNSMOS needs speechmos, librosa and onnxruntime ({exc}); make install provides them") from None
        import os

        import onnxruntime as ort

        folder = os.path.join(os.path.dirname(dnsmos.__file__), "dnsmos_models")
        self._helpers = dnsmos.DNSMOS.__new__(dnsmos.DNSMOS)  # reuse its mel features and polynomial fits
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        self.primary = ort.InferenceSession(os.path.join(folder, "sig_bak_ovr.onnx"), options, providers=["CPUExecutionProvider"])
        self.p808 = ort.InferenceSession(os.path.join(folder, "model_v8.onnx"), options, providers=["CPUExecutionProvider"])
        self.hop_s = hop_s
        self.version = metadata.version("speechmos")

    def score(self, mono16k: np.ndarray) -> DnsmosScores:
        audio = np.clip(mono16k.astype(np.float32), -1.0, 1.0)
        length = int(WINDOW_S * RATE)
        if len(audio) == 0:
            raise ValueError("no audio to score")
        while len(audio) < length:
            audio = np.concatenate([audio, audio])
        hop = max(1, int(self.hop_s * RATE))
        starts = list(range(0, len(audio) - length + 1, hop))
        if starts[-1] + length < len(audio):
            starts.append(len(audio) - length)  # cover the tail too
        sig, bak, ovrl, p808 = [], [], [], []
        for start in starts:
            row_deadline.check("while scoring DNSMOS")
            segment = audio[start:start + length]
            raw = self.primary.run(None, {"input_1": segment[None, :]})[0][0]
            s, b, o = self._helpers.get_polyfit_val(raw[0], raw[1], raw[2], False)
            mel = self._helpers.audio_melspec(audio=segment[:-160]).astype(np.float32)[None]
            p808.append(float(self.p808.run(None, {"input_1": mel})[0][0][0]))
            sig.append(float(s))
            bak.append(float(b))
            ovrl.append(float(o))
        return DnsmosScores(float(np.mean(sig)), float(np.mean(bak)), float(np.mean(ovrl)), float(np.mean(p808)))
