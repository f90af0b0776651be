"""Reference active speaker: LR-ASD (Liao et al., "LR-ASD: Lightweight and Robust Network for Active
Speaker Detection", IJCV 2025; the extended Light-ASD of CVPR 2023), written here from the paper and
from the layer names and shapes of the published checkpoint `finetuning_TalkSet.model` (a plain
state_dict, loaded strictly; model store folder `lr_asd`).

Network (841k parameters), per face track of T frames at 25 fps:
- visual encoder: grey 112x112 crops, (x / 255 - 0.4161) / 0.1688, as [B, 1, T, 112, 112]; three
  blocks, each a spatial pair (1x5x5 conv to half the channels, then 1x3x3 conv) followed by a
  temporal pair (5x1x1 conv, then 3x1x1 conv), every conv without bias and followed by BatchNorm
  and ReLU; block 1 halves the picture (stride 2 in its first conv), a 3x3 max pool of stride 2
  after blocks 1 and 2; channels 32, 64, 128; a global spatial max per frame -> [B, T, 128].
- audio encoder: 13 MFCCs at 100 Hz as [B, 1, 13, 4T]; three blocks, each a pair along the MFCC
  axis (5x1 to half the channels, then 3x1) and a pair along time (1x5, then 1x3), BatchNorm +
  ReLU; a max pool of 3 with stride 2 along time after blocks 1 and 2 (4T -> T); the mean over the
  MFCC axis -> [B, T, 128].
- fusion: audio and visual embeddings concatenated per frame (audio first, 256), gated by
  sigmoid(BN(conv1x1(x))) channel by channel.
- detector: a forward GRU (256 -> 64) over the frames and a second GRU run over the reversed frames
  (its output reversed back), concatenated (128) and gated the same way.
- head: a linear layer 128 -> 2 (lossAV.FC); class 1 is "speaking". The score per frame is the
  softmax probability of class 1. (`lossV.FC` is the visual-only auxiliary head of training; it is
  loaded, not used.)

The encoders see a few frames around each frame only, so long tracks are encoded in windows with a
margin of context (exact up to float rounding), windows of the same length of all tracks of a clip
in one batch; the GRUs then run over each whole run of consecutive frames, all runs of the clip
packed in one batch. A track with gaps is scored run by run, each run with the audio of its own
times (base.aligned_runs).

Checked by hand on ../shared/media: the swapped fusion order (visual first)
gives scores near 0.5 everywhere, the order here separates speaker and listener of the dialogue
clip; with the same architecture the AVA-only weights (`pretrain_AVA.model`) score a talking face
~0 under drum music instead of its speech. The TalkSet weights do not check lip sync: a moving mouth
with any speech scores high, also with the speech shifted by seconds (Light-ASD issue #23, the
authors' reply), and a real face drops once its speech is replaced by a noise floor.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from demix_pipeline import row_deadline
from demix_pipeline.backends.asd.base import TrackCrops, aligned_runs

FPS = 25
MFCC_RATE = 100
WEIGHTS = "finetuning_TalkSet.model"
MARGIN = 12        # frames of context on each side of an encoder window (receptive field: < 10 frames)


def _modules():
    """The network's torch modules (torch imported only when LR-ASD is used)."""
    import torch
    from torch import nn

    def bn(kind, channels):
        return kind(channels, momentum=0.01, eps=0.001)

    class VisualBlock(nn.Module):
        def __init__(self, cin: int, cout: int, down: bool):
            super().__init__()
            self.s_1 = nn.Conv3d(cin, cout // 2, (1, 5, 5), stride=(1, 2, 2) if down else 1, padding=(0, 2, 2), bias=False)
            self.s_norm_1 = bn(nn.BatchNorm3d, cout // 2)
            self.s_2 = nn.Conv3d(cout // 2, cout, (1, 3, 3), padding=(0, 1, 1), bias=False)
            self.s_norm_2 = bn(nn.BatchNorm3d, cout)
            self.t_1 = nn.Conv3d(cout, cout, (5, 1, 1), padding=(2, 0, 0), bias=False)
            self.t_norm_1 = bn(nn.BatchNorm3d, cout)
            self.t_2 = nn.Conv3d(cout, cout, (3, 1, 1), padding=(1, 0, 0), bias=False)
            self.t_norm_2 = bn(nn.BatchNorm3d, cout)

        def forward(self, x):
            for conv, norm in ((self.s_1, self.s_norm_1), (self.s_2, self.s_norm_2),
                               (self.t_1, self.t_norm_1), (self.t_2, self.t_norm_2)):
                x = torch.relu(norm(conv(x)))
            return x

    class AudioBlock(nn.Module):
        def __init__(self, cin: int, cout: int):
            super().__init__()
            self.m_1 = nn.Conv2d(cin, cout // 2, (5, 1), padding=(2, 0), bias=False)
            self.m_norm_1 = bn(nn.BatchNorm2d, cout // 2)
            self.m_2 = nn.Conv2d(cout // 2, cout, (3, 1), padding=(1, 0), bias=False)
            self.m_norm_2 = bn(nn.BatchNorm2d, cout)
            self.t_1 = nn.Conv2d(cout, cout, (1, 5), padding=(0, 2), bias=False)
            self.t_norm_1 = bn(nn.BatchNorm2d, cout)
            self.t_2 = nn.Conv2d(cout, cout, (1, 3), padding=(0, 1), bias=False)
            self.t_norm_2 = bn(nn.BatchNorm2d, cout)

        def forward(self, x):
            for conv, norm in ((self.m_1, self.m_norm_1), (self.m_2, self.m_norm_2),
                               (self.t_1, self.t_norm_1), (self.t_2, self.t_norm_2)):
                x = torch.relu(norm(conv(x)))
            return x

    class VisualEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.block1, self.block2, self.block3 = VisualBlock(1, 32, True), VisualBlock(32, 64, False), VisualBlock(64, 128, False)

        def forward(self, x):  # [B, 1, T, H, W] -> [B, T, 128]
            pool = lambda v: nn.functional.max_pool3d(v, (1, 3, 3), (1, 2, 2), (0, 1, 1))  # noqa: E731
            x = self.block3(pool(self.block2(pool(self.block1(x)))))
            return x.amax(dim=(3, 4)).transpose(1, 2)

    class AudioEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.block1, self.block2, self.block3 = AudioBlock(1, 32), AudioBlock(32, 64), AudioBlock(64, 128)

        def forward(self, x):  # [B, 1, 13, 4T] -> [B, T, 128]
            pool = lambda v: nn.functional.max_pool2d(v, (1, 3), (1, 2), (0, 1))  # noqa: E731
            x = self.block3(pool(self.block2(pool(self.block1(x)))))
            return x.mean(dim=2).transpose(1, 2)

    class Gate(nn.Module):
        """Channel gate over per-frame features: x * sigmoid(BN(conv1x1(x)))."""

        def __init__(self, channels: int):
            super().__init__()
            self.attention = nn.Conv1d(channels, channels, 1, bias=False)
            self.bn = bn(nn.BatchNorm1d, channels)

        def forward(self, a, b):  # [B, T, Ca], [B, T, Cb] -> [B, T, Ca + Cb]
            x = torch.cat((a, b), 2).transpose(1, 2)
            return (x * torch.sigmoid(self.bn(self.attention(x)))).transpose(1, 2)

    class Detector(nn.Module):
        def __init__(self, channels: int = 256):
            super().__init__()
            self.gru_forward = nn.GRU(channels, channels // 4, batch_first=True)
            self.gru_backward = nn.GRU(channels, channels // 4, batch_first=True)
            self.attention = Gate(channels // 2)

        def forward(self, x, lengths):  # [B, T, 256] (padded), lengths [B] -> [B, T, 128]
            steps = torch.arange(x.shape[1], device=x.device)[None, :]
            last = (lengths.to(x.device)[:, None] - 1)
            reverse = torch.where(steps <= last, last - steps, steps)  # each sequence reversed within its length
            flip = lambda v: torch.gather(v, 1, reverse[:, :, None].expand(-1, -1, v.shape[2]))  # noqa: E731
            forward = self._run(self.gru_forward, x, lengths)
            backward = flip(self._run(self.gru_backward, flip(x), lengths))
            return self.attention(forward, backward)

        @staticmethod
        def _run(gru, x, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = gru(packed)
            return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.visualEncoder, self.audioEncoder = VisualEncoder(), AudioEncoder()
            self.fusion, self.detector = Gate(256), Detector(256)

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.FC = nn.Linear(128, 2)

    class LRASDNetwork(nn.Module):
        """Module tree named as the published checkpoint (model.*, lossAV.FC, lossV.FC)."""

        def __init__(self):
            super().__init__()
            self.model, self.lossAV, self.lossV = Model(), Head(), Head()

        def encode_visual(self, crops):  # uint8/float [B, T, 112, 112]
            x = (crops.float() / 255 - 0.4161) / 0.1688
            return self.model.visualEncoder(x[:, None])

        def encode_audio(self, mfcc):  # [B, 4T, 13]
            return self.model.audioEncoder(mfcc.float()[:, None].transpose(2, 3))

        def speaking_logits(self, audio, visual, lengths):  # [B, T, 128] x2 -> [B, T, 2]
            return self.lossAV.FC(self.model.detector(self.model.fusion(audio, visual), lengths))

    return LRASDNetwork


def load_network(weights: str | Path, device: str = "cpu"):
    """The LR-ASD network with the checkpoint's weights (strict), in eval mode on `device`."""
    import torch

    network = _modules()()
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    network.load_state_dict(state, strict=True)
    return network.eval().to(device)


def _windows(n: int, core: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(window start, window end, core start, core end) covering frames 0..n of a run."""
    if n <= core + 2 * margin:
        return [(0, n, 0, n)]
    return [(max(0, a - margin), min(n, a + core + margin), a, min(n, a + core)) for a in range(0, n, core)]


class LRASD:
    """Speaking probability per crop for the face tracks of a clip, with the LR-ASD network."""

    name = "reference: LR-ASD"

    def __init__(self, weights: str | Path, device: str = "cpu", threads: int = 1, window_frames: int = 100,
                 batch_frames: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(max(1, int(threads)))
        self.device = device
        self.network = load_network(weights, device)
        self.window_frames = window_frames
        # frames given to the visual encoder at once: ~1.5 MB of activations a frame
        self.batch_frames = batch_frames or (4096 if device.startswith("cuda") else 256)

    def score(self, track: TrackCrops, speech16k: np.ndarray) -> np.ndarray:
        return self.score_tracks([track], speech16k)[0]

    def score_tracks(self, tracks: list[TrackCrops], speech16k: np.ndarray, features: np.ndarray | None = None
                     ) -> list[np.ndarray]:
        """Speaking probability per crop of each track (crops at 25 fps; `speech16k`: the clip's mono speech)."""
        import torch

        from demix_pipeline.backends.asd.onnx_contract import mfcc_100hz

        if not any(t.crops for t in tracks):
            return [np.zeros(len(t.crops), np.float32) for t in tracks]
        features = mfcc_100hz(speech16k) if features is None else features
        runs = []  # (track index, crop slice, video [n, 112, 112] uint8, audio [4n, 13])
        for i, track in enumerate(tracks):
            for part, audio in aligned_runs(track.times, features, FPS, MFCC_RATE):
                runs.append((i, part, np.stack(track.crops[part]), audio))
        with torch.inference_mode():
            visual, audio = self._encode(runs)
            lengths = torch.tensor([len(v) for v in visual])
            pad = lambda seqs: torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)  # noqa: E731
            logits = self.network.speaking_logits(pad(audio), pad(visual), lengths)
            speaking = torch.softmax(logits.float(), dim=-1)[..., 1].cpu().numpy()
        out = [np.zeros(len(t.crops), np.float32) for t in tracks]
        for (i, part, _, _), scores, n in zip(runs, speaking, lengths.tolist()):
            out[i][part] = scores[:n]
        return out

    def _encode(self, runs) -> tuple[list, list]:
        """Visual and audio embeddings [n, 128] of every run; windows of equal length share a batch."""
        import torch

        plan = [_windows(len(video), self.window_frames, MARGIN) for _, _, video, _ in runs]
        by_length: dict[int, list] = {}
        for r, windows in enumerate(plan):
            for w in windows:
                by_length.setdefault(w[1] - w[0], []).append((r, *w))
        visual, audio = {}, {}
        for length, group in by_length.items():
            per_batch = max(1, self.batch_frames // length)
            for b in range(0, len(group), per_batch):
                row_deadline.check("while scoring speakers (LR-ASD)")
                batch = group[b:b + per_batch]
                video = np.stack([runs[r][2][ws:we] for r, ws, we, _, _ in batch])
                mfcc = np.stack([runs[r][3][4 * ws:4 * we] for r, ws, we, _, _ in batch])
                v = self.network.encode_visual(torch.from_numpy(video).to(self.device))
                a = self.network.encode_audio(torch.from_numpy(mfcc).to(self.device))
                for j, (r, ws, we, cs, ce) in enumerate(batch):
                    visual[r, cs], audio[r, cs] = v[j, cs - ws:ce - ws], a[j, cs - ws:ce - ws]
        return ([torch.cat([visual[r, w[2]] for w in windows]) for r, windows in enumerate(plan)],
                [torch.cat([audio[r, w[2]] for w in windows]) for r, windows in enumerate(plan)])
