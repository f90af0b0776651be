"""How every bench script prints its figures and writes them as one JSON object (--json)."""
from __future__ import annotations

import json
from pathlib import Path


def report(header: list[str], figures: dict, json_path: Path | None) -> None:
    width = max(map(len, figures))
    for line in header:
        print(line)
    for key, value in figures.items():
        print(f"  {key.ljust(width)}  {value}")
    if json_path:
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
