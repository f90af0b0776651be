"""What the offline captioner can say truthfully about how a person looks: clothing colour and how
much of the body is in view, measured on the clip's frames.

Why these two: they are what a person mask can support without guessing. For each sampled frame
where the person's track has a head box, the MediaPipe selfie-segmentation mask (same wheel as the
face models) says which pixels are a person. The torso is the region below the head (a fixed
body proportion: `torso_*` head heights down, `torso_half_width` head widths either side). Its person
pixels' median colour, white-balanced by the frame's own white patch (each channel scaled so that its
`white_patch_percentile` percentile over the frame is 255, by at most `white_patch_max_gain`: Land's
white-patch colour constancy, so a
white shirt in a dim frame reads white, not grey), is named by the most probable of eleven basic colour
terms in van de Weijer et al.'s colour-name table learned from real images (colour_names.py). When
fewer person pixels of the torso than `min_person_heads` head areas are in the frame, the colour is
"not visible", never a guess. Body in view: the legs region below the torso on the person and in
the frame is "whole body", the torso alone "upper body", otherwise "face only". A person's value is
the most frequent over its frames (ties: the earlier frame's).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import cv2
import numpy as np

from demix_pipeline.backends.captioning.colour_names import NAMES, name_colour
from demix_pipeline.config import AppearanceConfig

Box = tuple[float, float, float, float]
NOT_VISIBLE = "not visible"
COLOURS = NAMES


@dataclass(frozen=True)
class Appearance:
    clothing_colour: str  # a COLOURS name or NOT_VISIBLE
    body_in_view: str  # "face only", "upper body" or "whole body"
    frames: int  # frames the person was measured on


def white_point(rgb: np.ndarray, percentile: float) -> np.ndarray:
    """Per channel, the frame's `percentile` value: estimated on every 4th pixel each way (16x less work),
    except the maximum (percentile 100), which a subsample could miss."""
    pixels = rgb if percentile >= 100 else rgb[::4, ::4]
    return np.percentile(pixels.reshape(-1, 3), percentile, axis=0)


def clothing_colour_name(median_rgb: np.ndarray, white: np.ndarray, max_gain: float) -> str:
    """The colour term of a median colour after white patch: channels scaled so that `white` becomes 255,
    by at most `max_gain` (a nearly black frame would otherwise turn its noise into colours)."""
    gain = np.minimum(255.0 / np.maximum(np.asarray(white, np.float64), 1.0), max_gain)
    return name_colour(np.clip(np.asarray(median_rgb, np.float64) * gain, 0, 255))


def _region(head: Box, cfg: AppearanceConfig, top: float, bottom: float, width: int, height: int
            ) -> tuple[tuple[int, int, int, int], float]:
    """Pixels of the region `top`..`bottom` head heights below the head, clipped; and the fraction kept."""
    x0, y0, x1, y1 = head
    head_w, head_h = x1 - x0, y1 - y0
    centre = (x0 + x1) / 2
    box = (centre - cfg.torso_half_width * head_w, y1 + top * head_h, centre + cfg.torso_half_width * head_w,
           y1 + bottom * head_h)
    area = max(1e-6, (box[2] - box[0]) * (box[3] - box[1]))
    clipped = (max(0, int(box[0])), max(0, int(box[1])), min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3]))))
    inside = max(0, clipped[2] - clipped[0]) * max(0, clipped[3] - clipped[1])
    return clipped, inside / area


def measure_frame(rgb: np.ndarray, mask: np.ndarray, head: Box, cfg: AppearanceConfig, white: np.ndarray
                  ) -> tuple[str, str]:
    """(clothing colour, body in view) of one person in one frame; `head` in the frame's pixels, `white` its
    white point (white_point)."""
    height, width = rgb.shape[:2]
    head_area = max(1.0, (head[2] - head[0]) * (head[3] - head[1]))
    (tx0, ty0, tx1, ty1), torso_in_frame = _region(head, cfg, cfg.torso_top, cfg.torso_bottom, width, height)
    colour, view = NOT_VISIBLE, "face only"
    if tx1 > tx0 and ty1 > ty0:
        person = mask[ty0:ty1, tx0:tx1] >= 0.5
        if person.sum() >= cfg.min_person_heads * head_area:  # enough of the clothing is on screen to name it
            colour = clothing_colour_name(np.median(rgb[ty0:ty1, tx0:tx1][person], axis=0), white,
                                          cfg.white_patch_max_gain)
        if torso_in_frame >= cfg.min_in_frame and person.mean() >= cfg.min_person_frac:
            view = "upper body"
            (lx0, ly0, lx1, ly1), legs_in_frame = _region(head, cfg, cfg.legs_top, cfg.legs_bottom, width, height)
            if legs_in_frame >= cfg.min_in_frame and lx1 > lx0 and ly1 > ly0 and \
                    (mask[ly0:ly1, lx0:lx1] >= 0.5).mean() >= cfg.min_person_frac / 2:  # legs are narrower
                view = "whole body"
    return colour, view


def _most_frequent(values: list[str], prefer_not: str | None = None) -> str:
    counts = Counter(v for v in values if v != prefer_not) or Counter(values)
    best = max(counts.values())
    return next(v for v in values if counts.get(v) == best)


class AppearanceMeter:
    """Holds the person-mask model (loaded once per worker); `start()` measures one clip's persons."""

    def __init__(self, cfg: AppearanceConfig):
        from demix_pipeline.backends.detection.selfie_segmentation import SelfieSegmenter

        self.cfg = cfg
        self.segmenter = SelfieSegmenter()

    def start(self, persons: dict[str, list[tuple[float, Box]]]) -> ClipAppearance:
        """`persons`: id -> (time, head box in 0-1 of the frame) of its track detections."""
        return ClipAppearance(self, persons)


class ClipAppearance:
    """One clip's persons, measured on the frames given to `add` (at most cfg.max_frames per person)."""

    def __init__(self, meter: AppearanceMeter, persons: dict[str, list[tuple[float, Box]]]):
        self.meter, self.cfg, self.persons = meter, meter.cfg, persons
        self.seen: dict[str, list[tuple[str, str]]] = {pid: [] for pid in persons}
        self.tolerance = 0.5 / self.cfg.fps + 0.2

    def add(self, t: float, frame) -> None:
        present = {}
        for pid, samples in self.persons.items():
            near = min(samples, key=lambda s: abs(s[0] - t)) if samples else None
            if near is not None and abs(near[0] - t) <= self.tolerance and len(self.seen[pid]) < self.cfg.max_frames:
                present[pid] = near[1]
        if not present:
            return
        rgb = frame.to_ndarray(format="rgb24")
        mask = self.meter.segmenter.mask(rgb)
        white = white_point(rgb, self.cfg.white_patch_percentile)
        height, width = rgb.shape[:2]
        for pid, box in present.items():
            head = (box[0] * width, box[1] * height, box[2] * width, box[3] * height)
            self.seen[pid].append(measure_frame(rgb, mask, head, self.cfg, white))

    def finish(self) -> dict[str, Appearance]:
        out = {}
        for pid, values in self.seen.items():
            if not values:
                out[pid] = Appearance(NOT_VISIBLE, "face only", 0)
                continue
            colour = _most_frequent([c for c, _ in values], prefer_not=NOT_VISIBLE)
            out[pid] = Appearance(colour, _most_frequent([v for _, v in values]), len(values))
        return out
