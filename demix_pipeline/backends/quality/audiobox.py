"""Reference audio quality: audiobox-aesthetics (CE, CU, PC, PQ) from a checkpoint in the model store.

Loaded with `AesPredictor(checkpoint_pth=<store>/audiobox-aesthetics/checkpoint.pt)`, never from
the hub; clips are scored in batches (16 kHz mono tensors, AesPredictor's own windowing). It picks
CUDA when the worker sees a GPU (the stage's resources.num_gpus), else the CPU.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

AXES = ("CE", "CU", "PC", "PQ")
RATE = 16000


class AudioboxAesthetics:
    def __init__(self, checkpoint: Path, precision: str = "32", batch_size: int = 4):
        from demix_pipeline.backends.torch_compat import ensure_torchaudio_importable

        ensure_torchaudio_importable()
        import torch
        from audiobox_aesthetics.infer import AesPredictor

        self.torch = torch
        self.predictor = AesPredictor(checkpoint_pth=str(checkpoint), precision=precision, batch_size=batch_size)
        self.name = f"audiobox-aesthetics ({Path(checkpoint).parent.name}/{Path(checkpoint).name})"

    def score(self, clips16k: list[np.ndarray]) -> list[dict[str, float]]:
        batch = [{"path": self.torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32))[None], "sample_rate": RATE}
                 for c in clips16k]
        return [{axis: float(result[axis]) for axis in AXES} for result in self.predictor.forward(batch)]
