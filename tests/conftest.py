"""Shared fixtures: the real media beside the project, one Ray session, generated edge-case files."""
from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MEDIA = Path(os.environ.get("DEMIX_TEST_MEDIA", REPO.parent / "shared" / "media"))
MODELS = Path(os.environ.get("DEMIX_TEST_MODELS", REPO.parent / "shared" / "models"))


def require_shared(folder: Path, files: tuple[str, ...], what: str) -> Path:
    """`folder` when it holds `files`; else fail in CI (../shared must be beside the project) or skip elsewhere."""
    if all((folder / name).is_file() for name in files):
        return folder
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"test {what} missing at {folder} (CI must have ../shared beside the project)")
    pytest.skip(f"test {what} missing at {folder}")


def require_media() -> Path:
    return require_shared(MEDIA, ("labels.tsv",), "media")


@pytest.fixture(scope="session")
def media() -> Path:
    return require_media()


def read_tsv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="session")
def ray_session():
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, object_store_memory=256 * 1024 * 1024, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def late_stages_run(media, tmp_path_factory, ray_session) -> dict:
    """One run of ingest .. caption over real clips, shared by the voiceover and caption tests."""
    from tests.pipeline_helpers import run_late_stages

    return run_late_stages(media, tmp_path_factory.mktemp("late_stages"))


def ffmpeg(*args: str) -> None:
    from demix_pipeline.media.ffmpeg import ffmpeg_binary

    subprocess.run([ffmpeg_binary(), "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def edge_cases(tmp_path_factory, media) -> dict[str, Path]:
    """Odd inputs made from real media: truncated, not a video, audio ending early, 5.1, VFR with audio, AVI."""
    root = tmp_path_factory.mktemp("edge")
    bbc = media / "multi_person_dialogue" / "pyscenedetect_bbc_documentary_issue195.mp4"
    files = {}
    files["text"] = root / "notes_renamed.mp4"
    files["text"].write_text("this is a text file, not a video\n" * 20)
    data = bbc.read_bytes()
    files["truncated"] = root / "truncated.mp4"
    files["truncated"].write_bytes(data[: len(data) // 2])
    faststart = root / "faststart_full.mp4"
    ffmpeg("-i", str(bbc), "-c", "copy", "-movflags", "+faststart", str(faststart))
    files["truncated_faststart"] = root / "truncated_faststart.mp4"
    fs = faststart.read_bytes()
    files["truncated_faststart"].write_bytes(fs[: int(len(fs) * 0.6)])
    faststart.unlink()
    files["short_audio"] = root / "short_audio.mp4"  # 8 s of video, audio stream ends at 3 s
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=8", "-f", "lavfi", "-i", "sine=f=330:duration=3",
           "-map", "0", "-map", "1", "-c:v", "libx264", "-g", "50", "-c:a", "aac", str(files["short_audio"]))
    files["surround"] = root / "surround_51.mp4"  # 5.1 audio
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=24:duration=4", "-f", "lavfi",
           "-i", "sine=f=220:duration=4", "-map", "0", "-map", "1", "-af", "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0",
           "-c:v", "libx264", "-c:a", "aac", str(files["surround"]))
    files["vfr"] = root / "goldeneye_vfr_with_audio.mp4"  # real VFR video (every 3rd frame dropped) plus audio
    ffmpeg("-i", str(media / "shot_boundaries" / "pyscenedetect_goldeneye-vfr-drop3.mp4"), "-f", "lavfi",
           "-i", "sine=f=440:duration=10", "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-shortest",
           str(files["vfr"]))
    files["avi"] = root / "mpeg4_mp3.avi"  # MPEG-4 Part 2 video with MP3 audio in AVI
    ffmpeg("-i", str(bbc), "-t", "7", "-c:v", "mpeg4", "-q:v", "4", "-c:a", "libmp3lame", "-b:a", "128k", str(files["avi"]))
    return files
