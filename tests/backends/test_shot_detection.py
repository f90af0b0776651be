"""Shot detection on every labelled video of ../shared/media: the default (fused) detector, ours against stock PySceneDetect.

Scoring (demix_pipeline/evaluation.py): ±0.25 s, fades/dissolves/inserts/jump cuts of
shot_transitions.tsv count neither for nor against. Files whose video cannot be decoded into
frames (the MUSDB stem has only cover art) get no boundaries.
"""
from __future__ import annotations

import numpy as np
import pytest

from demix_pipeline.backends.shot_detection import ShotBoundaries, make_detector
from demix_pipeline.config import DetectorConfig, ShotsConfig
from demix_pipeline.evaluation import GRADUAL_TYPES, halves, load_shot_truth, score_boundaries
from demix_pipeline.stages.shots import plan_clips


def _detect_one(cfg: DetectorConfig, path) -> ShotBoundaries | None:
    try:
        return make_detector(cfg, num_threads=1).detect(path)
    except ValueError:  # no decodable video (cover art only): no boundaries
        return None


def detect_all(media, cfg: DetectorConfig) -> dict[str, ShotBoundaries | None]:
    """`cfg`'s detector over every labelled video, one video per core (decoding is single-threaded, and
    TransNetV2 gains less from a second torch thread than from a second video)."""
    from concurrent.futures import ProcessPoolExecutor

    videos = list(load_shot_truth(media).cuts)
    with ProcessPoolExecutor(2) as pool:
        return dict(zip(videos, pool.map(_detect_one, [cfg] * len(videos), [media / v for v in videos])))


def boundary_times(bounds: dict[str, ShotBoundaries | None]) -> dict[str, list[float]]:
    return {video: b.boundary_times() if b is not None else [] for video, b in bounds.items()}


@pytest.fixture(scope="module")
def default_bounds(media):
    """The default detector (fused) over every labelled video, once for the tests below."""
    return detect_all(media, DetectorConfig())


def test_default_detector_f1_at_least_097_on_each_half(default_bounds, media):
    truth = load_shot_truth(media)
    predicted = boundary_times(default_bounds)
    scores = {half: score_boundaries(predicted, truth, videos=videos) for half, videos in halves(predicted).items()}
    print(scores)
    assert scores["all"]["f1"] >= 0.97, scores
    assert scores["held_out"]["f1"] >= 0.97, scores  # not only on the files parameters were chosen on
    assert scores["all"]["tp"] >= 16  # the labelled set has 17 hard cuts, one inside a fade-in range


def test_our_detector_beats_stock_content_detector(media):
    truth = load_shot_truth(media)
    ours = score_boundaries(boundary_times(detect_all(media, DetectorConfig(name="demix"))), truth)
    stock = score_boundaries(boundary_times(detect_all(media, DetectorConfig(name="content"))), truth)
    print(f"ours {ours}\nstock ContentDetector {stock}")
    assert ours["f1"] >= 0.95 and ours["f1"] > stock["f1"], (ours, stock)


def test_no_clip_contains_a_gradual_transition(media, default_bounds):
    """Every fade and dissolve of shot_transitions.tsv lies outside every planned clip."""
    cfg = ShotsConfig()
    checked = 0
    for video, ranges in load_shot_truth(media).transitions.items():
        gradual = [(a, b) for a, b, kind in ranges if kind in GRADUAL_TYPES]
        if not gradual:
            continue
        bounds = default_bounds[video]
        for piece in plan_clips(bounds, cfg):
            start = float(bounds.times[piece.start_frame])
            end = float(bounds.times[piece.end_frame]) if piece.end_frame < bounds.num_frames else bounds.end_time()
            for a, b in gradual:
                overlap = min(end, b) - max(start, a)
                # hand-labelled ranges are given to 0.1 s
                assert overlap <= 0.1, f"{video}: clip {start:.2f}-{end:.2f} overlaps {a}-{b} by {overlap:.2f} s"
            checked += 1
    assert checked >= 5


def test_flashes_and_camera_motion_give_no_cut(default_bounds):
    """The clips with fireworks, a fast zoom and codec-corruption recovery have no hard cut."""
    for name in ("sound_effects/vas_fireworks_video_02997.mp4", "sound_effects/vas_hammer_video_00323.mp4",
                 "sound_effects/vggsound_ripping_paper_53UdZyM9MyE_252000_262000.mp4"):
        assert default_bounds[name].cuts == [], name


def test_fused_scores_only_candidate_windows_and_matches_plain_transnetv2_there(media):
    """Where the fused detector runs TransNetV2 it gives the plain network's probabilities; it skips the rest."""
    from demix_pipeline.backends.shot_detection.transnetv2 import (CORE, HEIGHT, WIDTH, WindowScorer,
                                                                   load_network)
    from demix_pipeline.media.frames import iter_thumbnail_chunks, thumbnails_to_rgb

    video = media / "multi_person_dialogue" / "pyscenedetect_goldeneye_rotated_issue134.mp4"  # 240 frames, cuts 90, 210
    rgb = np.concatenate([thumbnails_to_rgb(chunk, WIDTH, HEIGHT) for chunk, _ in iter_thumbnail_chunks(video)])
    network = load_network()
    full = WindowScorer(network)
    partial = WindowScorer(network, score_all=False, lag=8)
    for start in range(0, len(rgb), 64):  # frames arrive in chunks, requests just before the frames they name
        partial.request([i for i in (90,) if start <= i < start + 64])
        full.push(rgb[start:start + 64])
        partial.push(rgb[start:start + 64])
    all_probs, some_probs = full.finish(), partial.finish()
    assert full.windows_run == -(-len(rgb) // CORE) and partial.windows_run == 1
    scored = ~np.isnan(some_probs)
    assert scored.sum() == CORE and scored[90]
    np.testing.assert_allclose(some_probs[scored], all_probs[scored], atol=1e-5)
    assert all_probs[89] >= 0.5 and all_probs[209] >= 0.5  # the last frames of the old shots
    assert np.sum(all_probs >= 0.5) <= 4


def test_window_scorer_memory_stays_bounded_on_a_long_source():
    from demix_pipeline.backends.shot_detection.transnetv2 import HEIGHT, WIDTH, WINDOW, WindowScorer

    class NoNetwork:  # no window is requested, so the network is never called
        def __call__(self, batch):
            raise AssertionError("no window was requested")

    scorer = WindowScorer(NoNetwork(), score_all=False, lag=8)
    chunk = np.zeros((128, HEIGHT, WIDTH, 3), np.uint8)
    for _ in range(200):  # 25,600 frames, about 17 minutes at 25 fps
        scorer.push(chunk)
        assert len(scorer.frames) <= 2 * WINDOW + 2 * len(chunk)
    assert np.isnan(scorer.finish()).all()


def test_stock_detector_maps_to_real_frame_times_on_vfr(media):
    bounds = make_detector(DetectorConfig(name="content")).detect(media / "shot_boundaries" / "pyscenedetect_goldeneye-vfr-drop3.mp4")
    assert [round(float(bounds.times[i]), 2) for i in bounds.cuts] == [3.75, 8.76]
