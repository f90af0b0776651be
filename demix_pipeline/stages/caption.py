"""Stage `caption`: a structured caption for every clip that survived voiceover (spec section 3).

Persons come from voiceover's face tracks: tracks with at least `min_person_samples` detections,
joined when they do not overlap in time and start where the other ended (a face lost and found
again), numbered Person1, Person2, ... left to right by where each is first seen. The active
speaker is the person whose tracks speak most often (voiceover's active-speaker scores), when that
is at least `speaker_min_frac` and the clip has speech; without one, the caption is only the scene
sentence. The participants sentence uses the diarization speaker count.
"""
from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa

from demix_pipeline.backends.captioning.structure import Caption, Person, participants_sentence
from demix_pipeline.decide import apply_checks
from demix_pipeline.media.frames import Every, iter_frames_at
from demix_pipeline.media.visual import PictureMeter
from demix_pipeline.stages.base import ClipStage, ModelUse


def _centre_x(box: list[float]) -> float:
    return (box[0] + box[2]) / 2


def group_persons(tracks: list[dict] | None, min_samples: int, same_distance: float) -> list[Person]:
    """Face tracks -> persons in a stable order (left to right where first seen, then by time)."""
    usable = sorted((t for t in tracks or [] if len(t["times"] or []) >= min_samples),
                    key=lambda t: (t["start_s"], t["track_id"]))
    groups: list[list[dict]] = []
    for track in usable:
        for group in groups:
            last = group[-1]
            if last["end_s"] <= track["start_s"] and abs(_centre_x(last["boxes"][-1]) - _centre_x(track["boxes"][0])) <= same_distance:
                group.append(track)
                break
        else:
            groups.append([track])
    groups.sort(key=lambda g: (round(_centre_x(g[0]["boxes"][0]), 3), g[0]["start_s"]))
    persons = []
    for index, group in enumerate(groups, start=1):
        scored = [t["speaking_frac"] for t in group if t["speaking_frac"] is not None]
        persons.append(Person(person_id=f"Person{index}", track_ids=[t["track_id"] for t in group],
                              box=[float(v) for v in group[0]["boxes"][0]],
                              speaking_frac=max(scored) if scored else None))
    return persons


def as_many_as_counted(persons: list[Person], tracks: list[dict] | None, human_count: int) -> list[Person]:
    """The `human_count` persons seen longest, renumbered left to right: the caption lists as many
    people as the clip's human count (and so its subsets) says."""
    if len(persons) <= human_count:
        return persons
    by_track = {t["track_id"]: t for t in tracks or []}

    def seen(person: Person) -> float:
        return sum(by_track[tid]["end_s"] - by_track[tid]["start_s"] for tid in person.track_ids)

    kept = sorted(sorted(persons, key=lambda p: -seen(p))[:human_count], key=lambda p: (round(_centre_x(p.box), 3)))
    for index, person in enumerate(kept, start=1):
        person.person_id = f"Person{index}"
    return kept


class CaptionStage(ClipStage):
    name = "caption"
    version = "3"  # 2: persons as counted, clothing colour and body in view; 3: learned colour names, white patch
    uses_model = True
    model_uses = (ModelUse("backend", "model", ("config.json",)),)

    def setup(self) -> None:
        cfg = self.cfg
        if cfg.backend == "reference":
            from demix_pipeline.backends.captioning.video_llm import VideoLLMCaptioner

            device = "cuda" if cfg.resources.num_gpus > 0 else "cpu"
            self.llm = VideoLLMCaptioner(self.model_folder(cfg.model), cfg, device)
        else:
            self.llm = None
        from demix_pipeline.backends.captioning.offline import TemplateCaptioner

        self.template = TemplateCaptioner(cfg)
        self.appearance = None
        if cfg.backend == "offline" and cfg.appearance.enabled:
            from demix_pipeline.backends.captioning.appearance import AppearanceMeter

            self.appearance = AppearanceMeter(cfg.appearance)

    def backends(self) -> dict[str, str]:
        if self.cfg.backend == "reference":
            from importlib import metadata

            return {"caption": f"reference: transformers {metadata.version('transformers')} video-LLM {self.cfg.model} "
                               f"(model store) for appearance and scene; structure, ids and speaker from the pipeline's "
                               f"measurements"}
        looks = ""
        if self.cfg.appearance.enabled:
            from demix_pipeline.backends.captioning.colour_names import table_version

            looks = (" and appearance (clothing colour, body in view) from the MediaPipe 0.10.21 selfie-segmentation "
                     f"person mask; colour names: {table_version()}")
        return {"caption": f"offline: measured-facts template{looks} (no appearance is invented)"}

    def measure(self, rows: list[dict]) -> list[dict]:
        """Captions of a batch; the reference model describes all persons and scenes of the batch together."""
        with ExitStack() as local_clips:  # the clips stay local until the model has seen them
            plans = [self._plan(row, local_clips.enter_context(self.artifact(row["clip_uri"]))) for row in rows]
            if self.llm is not None:
                described = self.llm.describe_many([(plan["clip"], plan["caption"].persons, plan["tracks"],
                                                     plan["duration"]) for plan in plans])
                for plan, (person_texts, scene) in zip(plans, described):
                    for person, text in zip(plan["caption"].persons, person_texts):
                        person.description = text
                    plan["caption"].scene = scene
        return [self._output(plan) for plan in plans]

    def measure_one(self, row: dict) -> dict:
        return self.measure([row])[0]

    def _plan(self, row: dict, clip: Path) -> dict:
        """Everything measured for one clip, with the template's descriptions filled in."""
        cfg = self.cfg
        duration = row["end_s"] - row["start_s"]
        persons = group_persons(row.get("voiceover.tracks"), cfg.min_person_samples, cfg.same_person_distance)
        persons = as_many_as_counted(persons, row.get("voiceover.tracks"), int(row.get("voiceover.human_count") or 0))
        has_speech = (row.get("voiceover.speech_s") or 0.0) >= cfg.min_speech_s
        speakers = [p for p in persons if p.speaking_frac is not None and p.speaking_frac >= cfg.speaker_min_frac]
        active = max(speakers, key=lambda p: p.speaking_frac).person_id if has_speech and speakers else None
        sounds = [name for name, present in (
            ("speech", has_speech),
            ("music", (row.get("demix.a_music_dbfs") or -200.0) >= cfg.silence_dbfs),
            ("sound effects", (row.get("demix.a_effects_dbfs") or -200.0) >= cfg.silence_dbfs)) if present]
        tracks = {t["track_id"]: t for t in row.get("voiceover.tracks") or []}
        stats, looks = self._look(clip, persons, tracks)
        for person in persons:
            seen = sum(tracks[tid]["end_s"] - tracks[tid]["start_s"] for tid in person.track_ids)
            found = looks.get(person.person_id)
            if found is not None:
                person.clothing_colour, person.body_in_view = found.clothing_colour, found.body_in_view
            person.description = self.template.describe_person(person.box, seen, found)
        speaker_count = int(row.get("voiceover.speakers") or 0) if has_speech else 0
        caption = Caption(speaker_count=speaker_count, participants=participants_sentence(speaker_count),
                          persons=persons, active_speaker=active,
                          scene=self.template.describe_scene(stats, sounds, duration))
        return {"row": row, "clip": clip, "stats": stats, "duration": duration, "tracks": tracks, "caption": caption}

    def _look(self, clip: Path, persons: list[Person], tracks: dict[int, dict]):
        """One decoding pass of the clip: the scene's picture measures at analysis_fps and, offline, each
        person's appearance at appearance.fps."""
        cfg = self.cfg
        meter, picture_due = PictureMeter(), Every(cfg.analysis_fps)
        looks, looks_due = None, None
        fps = cfg.analysis_fps
        if self.appearance is not None and persons:
            looks = self.appearance.start({p.person_id: [(t, box) for tid in p.track_ids
                                                         for t, box in zip(tracks[tid]["times"], tracks[tid]["boxes"])]
                                           for p in persons})
            looks_due, fps = Every(cfg.appearance.fps), max(fps, cfg.appearance.fps)
        for t, frame in iter_frames_at(clip, fps):
            if picture_due(t):
                meter.add(frame)
            if looks is not None and looks_due(t):
                looks.add(t, frame)
        return meter.result(), looks.finish() if looks is not None else {}

    def _output(self, plan: dict) -> dict:
        caption, stats = plan["caption"], plan["stats"]
        return {**plan["row"], "caption.text": caption.text(), "caption.structure": caption.as_row(),
                "caption.captioner": self.cfg.backend, "caption.brightness": stats.brightness,
                "caption.colourfulness": stats.colourfulness, "caption.motion": stats.motion}

    def decide_table(self, table: pa.Table) -> pa.Table:
        return apply_checks(table, [])  # captions drop nothing: every measured clip is kept
