"""The learned colour-name table (van de Weijer et al. 2009, recovered from OpenCV contrib's rotated form)."""
from __future__ import annotations

import numpy as np

from demix_pipeline.backends.captioning.appearance import clothing_colour_name
from demix_pipeline.backends.captioning.colour_names import (NAMES, load_table, name_colour, read_rotated_table,
                                                             recover_probabilities, regular_simplex_basis,
                                                             table_version)
from demix_pipeline.config import AppearanceConfig


def test_the_shipped_table_is_a_probability_per_name_for_every_rgb_cell():
    table = load_table()
    assert table.shape == (32768, len(NAMES)) and table.min() >= 0
    assert np.abs(table.sum(axis=1) - 1).max() <= 6 / 255  # 8-bit rounding of 11 values
    assert (table.argmax(axis=1)[:, None] == np.arange(len(NAMES))).any(axis=0).all()  # every name wins somewhere
    assert "featureColorName.cpp" in table_version() and "colour_names.npz sha256:" in table_version()


def test_clear_colours_get_their_names():
    # none of these is a prototype the build named the columns by (colour_names.PROTOTYPES)
    colours = [(200, 20, 30), (20, 40, 200), (30, 160, 40), (240, 240, 235), (10, 10, 12), (110, 110, 112),
               (230, 200, 20), (240, 140, 20), (120, 60, 20), (130, 40, 160), (240, 150, 190)]
    assert [name_colour(c) for c in colours] == \
        ["red", "blue", "green", "white", "black", "grey", "yellow", "orange", "brown", "purple", "pink"]


def test_white_patch_names_a_white_shirt_in_a_dim_frame_white():
    max_gain = AppearanceConfig().white_patch_max_gain
    shirt, frame_white = np.array([157, 141, 131]), np.array([173, 159, 156])  # videoretalking_face_2, measured
    assert name_colour(shirt) == "grey"
    assert clothing_colour_name(shirt, frame_white, max_gain) == "white"
    # the drummer's black shirt in a frame with white in it (measured): left as it is
    assert clothing_colour_name(np.array([14, 13, 14]), np.array([255, 253, 255]), max_gain) == "black"


def test_white_patch_gain_is_limited_in_a_nearly_black_frame():
    dark_cloth, frame_white = np.array([20, 18, 18]), np.array([12, 10, 10])  # a fade: nothing brighter than 12
    assert clothing_colour_name(dark_cloth, frame_white, max_gain=1e9) == "white"  # unlimited: noise made white
    assert clothing_colour_name(dark_cloth, frame_white, AppearanceConfig().white_patch_max_gain) != "white"


def test_recovery_finds_probabilities_from_their_rotated_centred_form(tmp_path):
    """Synthetic table (sparse Dirichlet rows, like learned names: most rows near a face of the simplex),
    written the way OpenCV contrib writes its table, then recovered up to the order of the names."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.full(11, 0.3), size=3000)
    basis = regular_simplex_basis(11) @ np.linalg.qr(rng.normal(size=(10, 10)))[0]  # an unknown orthonormal basis
    rotated = (probabilities - 1 / 11) @ basis
    source = tmp_path / "featureColorName.cpp"
    rows = ",\n".join("{" + ",".join(f"{v:.7g}f" for v in row) + "}" for row in rotated)
    source.write_text(f"namespace cv {{\n  const float ColorNames[][10]={{\n{rows}\n  }};\n}}\n")
    read = read_rotated_table(source)
    assert read.shape == (3000, 10)
    recovered, spread = recover_probabilities(read, starts=3)
    _, columns = linear_sum_assignment(-np.corrcoef(probabilities.T, recovered.T)[:11, 11:])
    assert np.abs(recovered[:, columns] - probabilities).max() < 0.01
    assert spread < 0.01


def test_a_rebuilt_table_is_compared_with_the_shipped_one(tmp_path):
    from demix_pipeline.backends.captioning.colour_names import TABLE, compare_tables

    with np.load(TABLE) as shipped:
        probabilities = shipped["probabilities"].copy()
    assert compare_tables(TABLE) == {"max_step_difference": 0, "names_differ_frac": 0.0}
    before = probabilities[0].astype(int)
    probabilities[0] = 0
    probabilities[0][(before.argmax() + 1) % len(NAMES)] = 255  # one RGB cell renamed
    np.savez_compressed(tmp_path / "rebuilt.npz", probabilities=probabilities, names=np.array(NAMES))
    assert compare_tables(tmp_path / "rebuilt.npz") == {
        "max_step_difference": int(np.abs(probabilities[0].astype(int) - before).max()), "names_differ_frac": 1 / 32768}
    assert compare_tables(tmp_path / "rebuilt.npz")["max_step_difference"] > 200
