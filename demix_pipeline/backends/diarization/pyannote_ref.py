"""Reference diarization: a pyannote.audio pipeline built from a local config and checkpoints.

The model store folder holds `config.yaml` in pyannote's pipeline format whose model entries
point at `.ckpt` files with paths relative to the folder (e.g. `segmentation: segmentation.ckpt`),
so no hub look-up happens; PYANNOTE_METRICS_ENABLED=0 and HF_HUB_OFFLINE=1 are set by
demix_pipeline/_env.py. Audio is passed in memory (no torchcodec decoding).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml

from demix_pipeline.backends.diarization.base import Turn, merge_turns

MODEL_KEYS = ("segmentation", "embedding", "plda")


def resolve_config(folder: Path) -> dict:
    """config.yaml with every relative model path made absolute (and checked to exist)."""
    config = yaml.safe_load((folder / "config.yaml").read_text())
    params = config.get("pipeline", {}).get("params", {})
    for key in MODEL_KEYS:
        value = params.get(key)
        if isinstance(value, str) and not value.startswith("$model/"):
            path = (folder / value).resolve()
            if not path.exists():
                raise FileNotFoundError(f"{folder}/config.yaml names {key}: {value}, which is not in the folder")
            params[key] = str(path)
        elif isinstance(value, str):
            raise ValueError(f"{folder}/config.yaml: {key} '{value}' refers to a hub repository; "
                             f"point it at a local checkpoint file instead")
    return config


class PyannoteDiarizer:
    name = "reference: pyannote.audio"

    def __init__(self, folder: Path, device: str = "cpu"):
        os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
        from demix_pipeline.backends.torch_compat import ensure_torchvision_importable

        ensure_torchvision_importable()
        import warnings

        import torch

        with warnings.catch_warnings():  # torchcodec's FFmpeg libraries may be absent: audio is passed in memory
            warnings.filterwarnings("ignore", message=".*torchcodec.*")
            from pyannote.audio import Pipeline, __version__

        self.pipeline = Pipeline.from_pretrained(resolve_config(Path(folder)))
        if self.pipeline is None:
            raise RuntimeError(f"pyannote could not build the pipeline in {folder}")
        self.pipeline.to(torch.device(device))
        self.version = f"pyannote.audio {__version__} ({Path(folder).name})"

    def diarize(self, mono16k: np.ndarray) -> list[Turn]:
        import torch

        if len(mono16k) < 1600:
            return []
        output = self.pipeline({"waveform": torch.from_numpy(mono16k.astype(np.float32))[None], "sample_rate": 16000})
        annotation = getattr(output, "speaker_diarization", output)
        names: dict[str, str] = {}
        turns = []
        for segment, _, label in annotation.itertracks(yield_label=True):
            names.setdefault(label, f"S{len(names)}")
            turns.append(Turn(round(segment.start, 3), round(segment.end, 3), names[label]))
        return merge_turns(turns, 0.0)
