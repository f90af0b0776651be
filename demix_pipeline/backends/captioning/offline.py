"""Offline captioner: words only for what the pipeline measured; it never invents appearance.

Persons are described by where they are (left / centre / right from the head box), how large
(close-up / medium / wide from the head height), how much of the body is in view and the colour of
the clothing on the torso (both measured on a person mask, backends/captioning/appearance.py; "not
visible" rather than a guess), and how long they are seen; the scene by
brightness, colourfulness and motion of the picture, which demixed stems are present, and length.
"""
from __future__ import annotations

from demix_pipeline.config import CaptionConfig
from demix_pipeline.media.visual import PictureStats


class TemplateCaptioner:
    name = "offline: measured-facts template"
    version = "2"

    def __init__(self, cfg: CaptionConfig):
        self.cfg = cfg

    def describe_person(self, box: list[float], seen_s: float, appearance=None) -> str:
        cfg = self.cfg
        centre = (box[0] + box[2]) / 2
        position = "on the left" if centre < 1 / 3 else "on the right" if centre > 2 / 3 else "in the centre"
        height = box[3] - box[1]
        scale = ("in close-up" if height >= cfg.close_up_height else
                 "in a medium shot" if height >= cfg.medium_height else "in a wide shot")
        looks = ""
        if appearance is not None:
            view = {"face only": "face only in view", "upper body": "upper body in view",
                    "whole body": "whole body in view"}[appearance.body_in_view]
            wears = ("clothing colour not visible" if appearance.clothing_colour == "not visible"
                     else f"wearing {appearance.clothing_colour}")
            looks = f" {view}, {wears},"
        return f"a person {position}, {scale},{looks} seen for {seen_s:.1f} seconds."

    def describe_scene(self, stats: PictureStats, sounds: list[str], duration_s: float) -> str:
        cfg = self.cfg
        light = ("A dark" if stats.brightness < cfg.dark_luma else
                 "A bright" if stats.brightness > cfg.bright_luma else "A moderately lit")
        colour = ("muted colours" if stats.colourfulness < cfg.muted_chroma else
                  "vivid colours" if stats.colourfulness > cfg.vivid_chroma else "natural colours")
        motion = ("little motion" if stats.motion < cfg.still_motion else
                  "strong motion" if stats.motion > cfg.busy_motion else "moderate motion")
        if sounds:
            heard = sounds[0] if len(sounds) == 1 else ", ".join(sounds[:-1]) + " and " + sounds[-1]
        else:
            heard = "no speech, music or sound effects"
        return f"{light} scene in {colour} with {motion}; sound: {heard}; {duration_s:.1f} seconds."
