"""Reference captioner: a transformers video-LLM from the model store (LLaVA-Video, LLaVA-OneVision,
Qwen2-VL / Qwen2.5-VL families), loaded with the Auto classes, never from a hub.

Person crops (around each person's largest face box, enlarged to take in head and shoulders) are
described one image per prompt, batched; the scene is described from `frames_per_clip` frames given
as a video. Prompts, frame count, crop size, dtype and token budget come from stages/caption.yaml.
Generation is greedy (do_sample=False) so the same clip gets the same text.

Serving through vLLM instead: subclass and override `generate(texts, images, videos)`, which is the
only place the model runs (prompts come from the processor's chat template either way).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from demix_pipeline import row_deadline
from demix_pipeline.config import CaptionConfig
from demix_pipeline.media.frames import iter_frames_at

CROP_CONTEXT = 2.2  # crop side = this x the face box's larger side (head and shoulders)


def frames_at(path: str | os.PathLike, times: list[float]) -> dict[float, np.ndarray]:
    """RGB frames at (or just after) each wanted time, from one decoding pass."""
    wanted = sorted(set(times))
    found: dict[float, np.ndarray] = {}
    last = None
    for t, frame in iter_frames_at(path, 1000.0):
        last = frame
        while wanted and wanted[0] <= t + 1e-6:
            found[wanted.pop(0)] = frame.to_ndarray(format="rgb24")
        if not wanted:
            break
    if wanted and last is not None:  # times past the last frame take the last frame
        image = last.to_ndarray(format="rgb24")
        found.update({t: image for t in wanted})
    return found


def person_crop(rgb: np.ndarray, box: list[float], size: int) -> np.ndarray:
    """Square crop around a face box given in 0-1 of the frame, enlarged by CROP_CONTEXT, resized to size."""
    import cv2

    h, w = rgb.shape[:2]
    cx, cy = (box[0] + box[2]) / 2 * w, (box[1] + box[3]) / 2 * h
    half = max((box[2] - box[0]) * w, (box[3] - box[1]) * h) * CROP_CONTEXT / 2
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half * 0.8))
    x1, y1 = int(min(w, cx + half)), int(min(h, cy + half * 1.2))
    region = rgb[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)


class VideoLLMCaptioner:
    name = "reference: transformers video-LLM"

    def __init__(self, folder: Path, cfg: CaptionConfig, device: str = "cpu"):
        from demix_pipeline.backends.torch_compat import ensure_torchvision_importable

        ensure_torchvision_importable()
        import torch
        import transformers
        from transformers import AutoModelForImageTextToText, AutoProcessor

        dtype = {"auto": torch.bfloat16 if device == "cuda" else torch.float32, "float32": torch.float32,
                 "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.dtype]
        self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        self.processor.tokenizer.padding_side = "left"  # batched generation: prompts end where generation starts
        self.model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True, dtype=dtype).to(device).eval()
        self.cfg, self.device = cfg, device
        self.batch_size = max(1, cfg.resources.batch_size)
        self.version = f"transformers {transformers.__version__} {type(self.model).__name__} ({Path(folder).name})"
        self.last_request: dict = {}

    def chat_prompt(self, kind: str, text: str) -> str:
        messages = [{"role": "user", "content": [{"type": kind}, {"type": "text", "text": text}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True)

    def generate(self, texts: list[str], images: list[np.ndarray] | None = None,
                 videos: list[np.ndarray] | None = None) -> list[str]:
        """Greedy generation for one batch: one image, or one video (frames x H x W x 3), per text."""
        import torch

        kwargs = {"images": images} if images is not None else {"videos": videos}
        inputs = self.processor(text=texts, return_tensors="pt", padding=True, **kwargs).to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        if "pixel_values_videos" in inputs:
            inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.model.dtype)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.cfg.max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in self.processor.batch_decode(new, skip_special_tokens=True)]

    def describe(self, clip: Path, persons, tracks: dict[int, dict], duration_s: float) -> tuple[list[str], str]:
        """(appearance per person, scene sentence) for one clip."""
        return self.describe_many([(clip, persons, tracks, duration_s)])[0]

    def _views(self, clip: Path, persons, tracks: dict[int, dict], duration_s: float):
        """One decoding pass of a clip: a crop per person (around its largest face) and the scene frames."""
        cfg = self.cfg
        scene_times = [round(duration_s * (i + 0.5) / cfg.frames_per_clip, 4) for i in range(cfg.frames_per_clip)]
        views = []
        for person in persons:
            candidates = [(box[3] - box[1], t, box) for tid in person.track_ids
                          for t, box in zip(tracks[tid]["times"], tracks[tid]["boxes"])]
            _, t, box = max(candidates)
            views.append((round(float(t), 4), box))
        frames = frames_at(clip, scene_times + [t for t, _ in views])
        crops = [person_crop(frames[t], box, cfg.crop_size) for t, box in views]
        return crops, np.stack([frames[t] for t in scene_times])

    def describe_many(self, requests: list[tuple]) -> list[tuple[list[str], str]]:
        """(clip, persons, tracks, duration_s) per clip -> (appearance per person, scene) per clip.

        All person crops of the batch go through the model together, `batch_size` at a time, and so
        do the scene videos: on a GPU the batch, not the clip, fills the device.
        """
        cfg = self.cfg
        views = [self._views(*request) for request in requests]
        crops = [crop for clip_crops, _ in views for crop in clip_crops]
        person_prompt = self.chat_prompt("image", cfg.person_prompt)
        scene_prompt = self.chat_prompt("video", cfg.scene_prompt)
        person_texts: list[str] = []
        for start in range(0, len(crops), self.batch_size):
            row_deadline.check("while captioning persons")
            batch = crops[start:start + self.batch_size]
            person_texts += self.generate([person_prompt] * len(batch), images=batch)
        scenes: list[str] = []
        videos = [video for _, video in views]
        for start in range(0, len(videos), self.batch_size):
            row_deadline.check("while captioning scenes")
            batch = videos[start:start + self.batch_size]
            scenes += self.generate([scene_prompt] * len(batch), videos=batch)
        self.last_request = {"person_prompt": person_prompt, "scene_prompt": scene_prompt, "clips": len(requests),
                             "scene_frames": cfg.frames_per_clip, "crops": len(crops), "crop_size": cfg.crop_size}
        out, index = [], 0
        for (clip_crops, _), scene in zip(views, scenes):
            out.append((person_texts[index:index + len(clip_crops)], scene))
            index += len(clip_crops)
        return out
