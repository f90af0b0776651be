"""What a diarization backend returns: speech turns with speaker labels."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Turn:
    start_s: float
    end_s: float
    speaker: str

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def merge_turns(turns: list[Turn], gap_s: float) -> list[Turn]:
    """Sorted turns with same-speaker neighbours closer than gap_s joined."""
    out: list[Turn] = []
    for turn in sorted(turns, key=lambda t: (t.start_s, t.end_s)):
        if out and out[-1].speaker == turn.speaker and turn.start_s - out[-1].end_s <= gap_s:
            out[-1] = Turn(out[-1].start_s, max(out[-1].end_s, turn.end_s), turn.speaker)
        else:
            out.append(turn)
    return out


def speech_seconds(turns: list[Turn]) -> float:
    """Time covered by at least one turn (overlaps counted once)."""
    total, end = 0.0, float("-inf")
    for turn in sorted(turns, key=lambda t: t.start_s):
        start = max(turn.start_s, end)
        if turn.end_s > start:
            total += turn.end_s - start
        end = max(end, turn.end_s)
    return total
