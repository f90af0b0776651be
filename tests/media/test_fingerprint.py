"""Perceptual fingerprints: near-duplicate copies of real clips group with their original; the
labelled shared videos (talking heads included) never group with each other."""
from __future__ import annotations

import csv
import time

import numpy as np
import pytest

from demix_pipeline.media.fingerprint import (HAMMING, MAX_MEAN_DISTANCE, MIN_COMPARED, MIN_MATCHED_FRAC, MIN_OVERLAP_FRAC,
                                              Fingerprint,
                                              _score, fingerprint, group, match)
from demix_pipeline.media.frames import open_video
from tests.conftest import ffmpeg

# one of each kind, >= 8 s, with motion; fireworks: dark night sky (crop must not eat into it)
ORIGINALS = [
    "multi_person_dialogue/datajuicer_video1_cartoon_dialogue.mp4",  # fast motion: rotating background
    "music/vggsound_playing_harp_6zlMP_kQ_-w_30000_40000.mp4",
    "sound_effects/vas_fireworks_video_02997.mp4",
    "scenery_no_people/datajuicer_video11_great_wall_silent_track.mp4",
    "talking_head_single/liveportrait_d11_child_speaking.mp4",
]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "28"]
REENCODE = [["-c:v", "libx265", "-preset", "ultrafast", "-crf", "32", "-x265-params", "log-level=error"],
            ["-c:v", "mpeg4", "-q:v", "9"]]


def _labelled(media) -> list[str]:
    with open(media / "labels.tsv", newline="") as handle:
        paths = sorted({row["video_path"] for row in csv.DictReader(handle, delimiter="\t")})
    with_video = []
    for path in paths:
        try:
            container, _ = open_video(media / path, threaded=False)
        except ValueError:  # the MUSDB stem file: audio only
            continue
        container.close()
        with_video.append(path)
    return with_video


def _copies(media, root, n: int, path: str) -> dict[str, object]:
    src = media / path
    container, stream = open_video(src, threaded=False)
    duration, aspect = float(container.duration) / 1e6, stream.width / stream.height
    container.close()
    box = "480:360" if aspect > 1.5 else "640:360"  # 16:9 into 4:3 (letterbox), square into 16:9 (pillarbox)
    stem = root / f"v{n}"
    kinds = {
        "reencode": ["-i", str(src), *REENCODE[n % 2]],
        "rescale": ["-i", str(src), "-vf", "scale=trunc(iw*0.3)*2:trunc(ih*0.3)*2", *X264],
        "letterbox": ["-i", str(src), "-vf", f"scale={box}:force_original_aspect_ratio=decrease:force_divisible_by=2,"
                      f"pad={box}:(ow-iw)/2:(oh-ih)/2", "-r", "25", *X264],  # and another frame rate
        "trim": ["-ss", f"{0.1 * duration:.3f}", "-t", f"{0.8 * duration:.3f}", "-i", str(src), *X264],
    }
    out = {}
    for kind, args in kinds.items():
        target = stem.with_name(f"{stem.name}_{kind}.mp4")
        ffmpeg(*args, "-an", str(target))
        out[kind] = target
    return out


@pytest.fixture(scope="module")
def prints(media, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("fingerprint")
    labelled = _labelled(media)
    fps, seconds = {}, {}
    for path in labelled:
        start = time.perf_counter()
        fps[path] = fingerprint(media / path)
        seconds[path] = time.perf_counter() - start
    copies = {}
    for n, path in enumerate(ORIGINALS):
        assert path in fps
        for kind, file in _copies(media, root, n, path).items():
            copies[f"copy:{kind}:{path}"] = (path, kind)
            fps[f"copy:{kind}:{path}"] = fingerprint(file)
    return {"fps": fps, "labelled": labelled, "copies": copies, "seconds": seconds}


def test_copies_group_with_their_original_and_distinct_videos_never_do(prints):
    fps, labelled, copies = prints["fps"], prints["labelled"], prints["copies"]
    result = group(fps)
    groups = result.groups
    print(f"index: {result.pairs_checked} of {len(fps) * (len(fps) - 1) // 2} pairs matched, {len(result.edges)} same")
    for copy_id, (original, kind) in copies.items():
        direct = match(fps[original], fps[copy_id])
        print(f"{kind:9s} frac={direct.matched_frac:.3f} mean={direct.mean_distance:5.2f} "
              f"offset={direct.offset_s:+.2f}s overlap={direct.overlap_s:.1f}s  {original}")
        assert direct.same, (copy_id, direct)
        assert groups[copy_id] == groups[original], (copy_id, direct)
        other, why = result.reasons[copy_id]
        assert why.same and groups[other] == groups[original]
    by_group: dict[str, list[str]] = {}
    for path in labelled:
        by_group.setdefault(groups[path], []).append(path)
    assert all(len(members) == 1 for members in by_group.values()), [m for m in by_group.values() if len(m) > 1]
    for path in ORIGINALS:  # group id: the smallest source id of the group ("copy:..." < "multi_...")
        assert groups[path] == min([path] + [c for c, (o, _) in copies.items() if o == path])
    for path in labelled:
        if path not in ORIGINALS:
            assert groups[path] == path and path not in result.reasons


def _closest_alignment(a: Fingerprint, b: Fingerprint) -> tuple[float, float]:
    """Lowest mean distance and highest matched fraction over every offset (1/8 s steps) whose
    overlap `match` would accept: half the shorter source and at least MIN_COMPARED samples."""
    step = 1.0 / a.sample_fps
    shorter = min(a.duration_s, b.duration_s)
    low, high = 64.0, 0.0
    for d in np.arange(-a.duration_s, b.duration_s, step / 4):
        overlap = min(a.duration_s, b.duration_s - d) - max(0.0, -d)
        if overlap + step < MIN_OVERLAP_FRAC * shorter:
            continue
        compared, matched, mean = _score(a, b, float(d), HAMMING, step)
        if compared >= MIN_COMPARED:
            low, high = min(low, mean), max(high, matched / compared)
    return low, high


def test_distinct_labelled_videos_are_far_apart(prints):
    """All pairs, not just those the index proposes, and every admissible alignment: the margin."""
    fps, labelled = prints["fps"], prints["labelled"]
    lowest, highest = (64.0, ("", "")), (0.0, ("", ""))
    for i, a in enumerate(labelled):
        for b in labelled[i + 1:]:
            assert not match(fps[a], fps[b]).same, (a, b)
            assert not match(fps[a], fps[b], vote_hamming=24).same, (a, b)  # lenient votes: other offsets tried
            low, high = _closest_alignment(fps[a], fps[b])
            lowest = min(lowest, (low, (a, b)))
            highest = max(highest, (high, (a, b)))
    print(f"distinct pairs: lowest mean distance {lowest[0]:.2f} {lowest[1]}; "
          f"highest matched fraction {highest[0]:.3f} {highest[1]}")
    assert lowest[0] > MAX_MEAN_DISTANCE and highest[0] < MIN_MATCHED_FRAC / 2
    assert len([p for p in labelled if p.startswith("talking_head_single/")]) >= 4
    seconds = prints["seconds"]
    print(f"fingerprint time per source: mean {np.mean(list(seconds.values())):.2f}s, max {max(seconds.values()):.2f}s, "
          f"per second of video {sum(seconds.values()) / sum(fps[p].duration_s for p in labelled):.3f}s")


def test_still_pictures_of_different_people_do_not_match(media, tmp_path):
    """A still-image video carries one picture's worth of evidence: two talking heads' stills stay
    apart, while the same still re-encoded smaller still matches."""
    stills = {}
    for name in ("videoretalking_face_2", "videoretalking_face_3"):
        stills[name] = tmp_path / f"{name}.mp4"
        ffmpeg("-i", str(media / "talking_head_single" / f"{name}.mp4"), "-frames:v", "1", "-vf", "scale=320:320",
               str(tmp_path / f"{name}.png"))
        ffmpeg("-loop", "1", "-i", str(tmp_path / f"{name}.png"), "-t", "6", "-r", "10", *X264, str(stills[name]))
    small = tmp_path / "small.mp4"
    ffmpeg("-i", str(stills["videoretalking_face_2"]), "-vf", "scale=160:160", "-c:v", "mpeg4", "-q:v", "8", str(small))
    a, b = fingerprint(stills["videoretalking_face_2"]), fingerprint(stills["videoretalking_face_3"])
    assert not match(a, b).same
    assert match(a, fingerprint(small)).same
    assert set(group({"a": a, "b": b}).groups.values()) == {"a", "b"}


def test_record_round_trip(prints):
    fp = prints["fps"][ORIGINALS[0]]
    back = Fingerprint.from_record(fp.to_record())
    assert back.hashes.dtype == np.uint64 and np.array_equal(back.hashes, fp.hashes)
    assert np.allclose(back.times, fp.times) and back.crop == fp.crop and back.version == fp.version
    assert match(fp, back).same
    with pytest.raises(ValueError):
        Fingerprint.from_record({**fp.to_record(), "version": "other"})
