"""The caption structure of ../shared/spec/DEMIX.md section 3, and its text rendering.

1. a participants sentence from the diarization speaker count ("Two person conversation.");
2. one entry per person: `PersonN` and an appearance description;
3. the active speaker's identifier;
4. one sentence about the overall scene.
Without an active speaker, only the scene sentence.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

NUMBERS = ["No", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten"]


@dataclass
class Person:
    person_id: str              # Person1, Person2, ... left to right where first seen
    track_ids: list[int]
    box: list[float]            # first box, [x0, y0, x1, y1] in 0-1 of the frame
    description: str = ""
    speaking_frac: float | None = None
    clothing_colour: str | None = None  # offline: a basic colour term or "not visible"; null: not measured
    body_in_view: str | None = None     # offline: "face only", "upper body" or "whole body"; null: not measured


@dataclass
class Caption:
    speaker_count: int
    participants: str
    persons: list[Person] = field(default_factory=list)
    active_speaker: str | None = None
    scene: str = ""

    def text(self) -> str:
        if self.active_speaker is None:
            return self.scene
        parts = [self.participants]
        parts += [f"{p.person_id}: {p.description}" for p in self.persons]
        parts.append(f"Active speaker: {self.active_speaker}.")
        parts.append(self.scene)
        return " ".join(part.strip() for part in parts if part.strip())

    def as_row(self) -> dict:
        return asdict(self)


def participants_sentence(speaker_count: int) -> str:
    if speaker_count <= 0:
        return "No speech."
    word = NUMBERS[speaker_count] if speaker_count < len(NUMBERS) else str(speaker_count)
    return "One person speaking." if speaker_count == 1 else f"{word} person conversation."
