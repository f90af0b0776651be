"""run.row_deadline_s reaches model calls too: a row past it stops between windows with RowTimeout."""
from __future__ import annotations

import time

import numpy as np
import pytest

from demix_pipeline import row_deadline


def test_no_deadline_never_stops_a_row():
    with row_deadline.row_time(None):
        assert row_deadline.remaining() is None
        row_deadline.check("while testing")


def test_a_row_past_its_deadline_stops_with_where_it_was():
    with row_deadline.row_time(60.0):
        assert 59.0 < row_deadline.remaining() <= 60.0
        row_deadline.check("while testing")  # well within
    with row_deadline.row_time(0.01):
        time.sleep(0.02)
        with pytest.raises(row_deadline.RowTimeout, match=r"deadline of 0.01 s while testing \(run.row_deadline_s\)"):
            row_deadline.check("while testing")


def test_the_deadline_ends_with_the_row():
    with row_deadline.row_time(1e-6):
        time.sleep(0.001)
        with pytest.raises(row_deadline.RowTimeout):
            row_deadline.check("while testing")
    assert row_deadline.remaining() is None
    row_deadline.check("after the row")  # the process's next work is not stopped by the row that ended
    with pytest.raises(ZeroDivisionError), row_deadline.row_time(60.0):
        1 / 0
    assert row_deadline.remaining() is None


def test_decode_timeout_is_a_row_timeout():
    from demix_pipeline.media.decode import DecodeTimeout

    assert issubclass(DecodeTimeout, row_deadline.RowTimeout)


def test_a_speech_denoiser_stops_between_frames_past_the_deadline():
    from demix_pipeline.backends.separation.rnnoise import RNNoise

    denoiser = RNNoise()
    noise = np.random.default_rng(0).normal(0, 0.05, 48000).astype(np.float32)
    assert denoiser.enhance(noise).shape == noise.shape  # no deadline: the whole signal
    with row_deadline.row_time(1e-6), pytest.raises(row_deadline.RowTimeout, match="while running rnnoise"):
        denoiser.enhance(noise)
