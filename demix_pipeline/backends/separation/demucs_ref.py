"""Reference separator A: a Demucs-format model from the model store (e.g. an HTDemucs trained on
Divide-and-Remaster, whose sources are music, effects, dialog).

The store folder is a demucs "repo": `<sig>.th` packages and optional bag `<name>.yaml` files,
loaded with `demucs.pretrained.get_model(name, repo=folder)` and run with
`demucs.apply.apply_model`. No hub is contacted: a repo is always given.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class DemucsSeparator:
    def __init__(self, name: str, repo: Path, device: str = "cpu", shifts: int = 0, overlap: float = 0.25,
                 segment: float | None = None):
        import torch
        from demucs.pretrained import get_model

        if not any(repo.glob(f"{name}*.th")) and not (repo / f"{name}.yaml").exists():
            raise FileNotFoundError(f"demucs model '{name}' not found in {repo} (expected {name}.th or {name}.yaml)")
        self.model = get_model(name, repo=Path(repo)).to(device)
        self.model.eval()
        self.torch = torch
        self.device, self.shifts, self.overlap, self.segment = device, shifts, overlap, segment
        self.stems = tuple(self.model.sources)
        self.rate = int(self.model.samplerate)
        self.channels = int(self.model.audio_channels)
        self.name = f"demucs:{name} ({type(self.model).__name__}, sources {','.join(self.stems)})"

    def separate(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """audio: (n,) mono or (channels, n) at self.rate -> {source: mono (n,)} at self.rate."""
        from demucs.apply import apply_model

        torch = self.torch
        data = audio[None] if audio.ndim == 1 else audio
        if data.shape[0] != self.channels:
            data = np.repeat(data.mean(axis=0, keepdims=True), self.channels, axis=0)
        mix = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
        # demucs normalises by the mixture's statistics, as its own separate.py does
        ref = mix.mean(0)
        mean, std = ref.mean(), ref.std() + 1e-8
        with torch.inference_mode():
            out = apply_model(self.model, ((mix - mean) / std)[None], shifts=self.shifts, split=True,
                              overlap=self.overlap, progress=False, device=self.device, segment=self.segment)[0]
        out = out * std + mean
        return {stem: out[i].mean(0).cpu().numpy().astype(np.float32) for i, stem in enumerate(self.stems)}
