"""Greedy IoU tracking of face boxes across sampled frames (online, one pass)."""
from __future__ import annotations

from dataclasses import dataclass, field

from demix_pipeline.backends.detection.base import Detection, iou


@dataclass
class Track:
    track_id: int
    detections: list[tuple[float, Detection]] = field(default_factory=list)

    @property
    def last(self) -> Detection:
        return self.detections[-1][1]

    @property
    def last_t(self) -> float:
        return self.detections[-1][0]


class IoUTracker:
    """A detection joins the live track whose last box overlaps it most (IoU >= min_iou), else starts one.

    Tracks not matched for more than `max_gap_s` end; a re-appearing face starts a new track.
    """

    def __init__(self, min_iou: float = 0.3, max_gap_s: float = 1.0):
        self.min_iou, self.max_gap_s = min_iou, max_gap_s
        self.tracks: list[Track] = []

    def live(self, t: float) -> list[Track]:
        return [track for track in self.tracks if t - track.last_t <= self.max_gap_s]

    def update(self, t: float, detections: list[Detection]) -> list[Track]:
        """Assign this frame's detections to tracks; returns the tracks seen at t."""
        candidates = self.live(t)
        pairs = sorted(((iou(track.last.box, det.box), ti, di) for ti, track in enumerate(candidates)
                        for di, det in enumerate(detections)), reverse=True)
        used_tracks, used_dets, seen = set(), set(), []
        for overlap, ti, di in pairs:
            if overlap < self.min_iou:
                break
            if ti in used_tracks or di in used_dets:
                continue
            used_tracks.add(ti)
            used_dets.add(di)
            candidates[ti].detections.append((t, detections[di]))
            seen.append(candidates[ti])
        for di, det in enumerate(detections):
            if di not in used_dets:
                track = Track(len(self.tracks), [(t, det)])
                self.tracks.append(track)
                seen.append(track)
        return seen
