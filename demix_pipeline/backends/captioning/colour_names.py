"""Learned colour names: P(name | RGB) for the eleven basic English colour terms, from real-world images.

Why a learned table and not hue/saturation/value rules: rules set by hand name a white shirt in a dim
frame "grey" and put the grey/black and red/brown borders where someone guessed them. van de Weijer,
Schmid, Verbeek and Larlus ("Learning Color Names for Real-World Applications", IEEE TIP 18(7), 2009)
learned the eleven names' probabilities on a 32x32x32 RGB grid from images found by the names.

Provenance. OpenCV contrib ships that table (`modules/tracking/src/featureColorName.cpp`, the colour
features of its KCF tracker; in the `opencv-contrib-python-headless` 4.14.0.94 sdist on PyPI, sha256
below) in Danelljan et al.'s 10-dimensional form (CVPR 2014): each row's 11 probabilities minus 1/11, in
an orthonormal basis of the plane where they sum to one. That basis is not shipped with it. `build`
recovers the probabilities without it: the rows' maximum norm is sqrt(10/11), a pure name, so the basis
is orthonormal and centred on 1/11; the eleven names are then the vertices of a regular simplex, and
the rotation that puts every row inside it (all probabilities >= 0) is found by least squares from
random starts; every start reaches the same table (to 0.003; the build fails past 0.01), up to the
order of its columns. A column
is named by the canonical colour (`PROTOTYPES`) it gives the highest probability; the build fails if
that is not one distinct column per name. The result, as 8-bit probabilities, is
`colour_names.npz` beside this file; `python -m demix_pipeline.backends.captioning.colour_names
featureColorName.cpp` rebuilds it, and `make check-colour-names` downloads the pinned sdist, rebuilds the
table and compares it with the shipped one (at most one 8-bit step apart).
"""
from __future__ import annotations

import argparse
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from demix_pipeline.media.hashing import file_sha256

NAMES = ("black", "white", "grey", "red", "orange", "yellow", "brown", "green", "blue", "purple", "pink")
# A clear example of each term (sRGB), only to tell which recovered column is which name.
PROTOTYPES = ((0, 0, 0), (255, 255, 255), (128, 128, 128), (255, 0, 0), (255, 128, 0), (255, 255, 0), (128, 64, 0),
              (0, 255, 0), (0, 0, 255), (128, 0, 128), (255, 128, 192))
TABLE = Path(__file__).with_name("colour_names.npz")
MAX_SPREAD = 0.01  # the build fails when its random starts disagree by more (measured: 0.0027)
SDIST_URL = ("https://files.pythonhosted.org/packages/47/36/cc620b8809235d50f3713b1b592fcd2f117e41322a10fb37e6d332b8e7b8/"
             "opencv_contrib_python_headless-4.14.0.94.tar.gz")
SDIST_SHA256 = "6cd98a20010c80bf9e6a9cff6189dd2c10bd111fb0aa4d5c6361389514a0ff6c"
SOURCE_MEMBER = "opencv_contrib/modules/tracking/src/featureColorName.cpp"
SOURCE = (f"van de Weijer et al., TIP 2009, colour-name table from opencv-contrib-python-headless 4.14.0.94 sdist "
          f"(sha256 {SDIST_SHA256}), {SOURCE_MEMBER}")


def grid_index(rgb: np.ndarray) -> np.ndarray:
    """Row of the 32x32x32 table for uint8 RGB values (..., 3): red varies fastest, as in the source."""
    cells = np.clip(np.asarray(rgb, np.float64), 0, 255).astype(np.int64) // 8
    return cells[..., 0] + 32 * cells[..., 1] + 1024 * cells[..., 2]


@lru_cache(maxsize=1)
def load_table() -> np.ndarray:
    """(32768, 11) float32 probabilities in NAMES order."""
    if not TABLE.exists():
        raise RuntimeError(f"{TABLE} is missing: it ships with demix; rebuild it with "
                           "`python -m demix_pipeline.backends.captioning.colour_names featureColorName.cpp`")
    with np.load(TABLE) as data:
        if tuple(data["names"]) != NAMES:
            raise RuntimeError(f"{TABLE} names {tuple(data['names'])}, expected {NAMES}")
        return data["probabilities"].astype(np.float32) / 255.0


@lru_cache(maxsize=1)
def table_version() -> str:
    load_table()  # the clear error when the table is missing
    return f"{SOURCE}; {TABLE.name} sha256:{file_sha256(TABLE)[:12]}"


def colour_probabilities(rgb) -> np.ndarray:
    """P(name) in NAMES order of one RGB colour (0-255)."""
    return load_table()[int(grid_index(np.asarray(rgb).reshape(3)))]


def name_colour(rgb) -> str:
    """The most probable basic colour term of one RGB colour (0-255)."""
    return NAMES[int(np.argmax(colour_probabilities(rgb)))]


def read_rotated_table(source_cpp: Path) -> np.ndarray:
    """The (32768, 10) `ColorNames` rows of OpenCV contrib's featureColorName.cpp."""
    text = Path(source_cpp).read_text()
    start = text.index("ColorNames[][10]={") + len("ColorNames[][10]={")
    rows = re.findall(r"\{([^}]*)\}", text[start:text.rindex("};")])
    table = np.array([[float(v.strip().rstrip("f")) for v in row.split(",")] for row in rows], np.float64)
    if table.shape[1:] != (10,):
        raise ValueError(f"{source_cpp}: expected rows of 10 numbers, got {table.shape}")
    return table


def regular_simplex_basis(names: int) -> np.ndarray:
    """(names, names-1): orthonormal columns spanning the plane orthogonal to the all-ones vector."""
    centred = np.eye(names) - 1.0 / names
    return np.linalg.svd(centred)[0][:, :names - 1]


def recover_probabilities(rotated: np.ndarray, starts: int = 4, seed: int = 0) -> tuple[np.ndarray, float]:
    """Probabilities (rows, k+1) from their centred form in an unknown orthonormal basis (rows, k).

    Least squares on the negative parts over rotations (exp of a skew matrix, L-BFGS), from `starts`
    random starts; returns the best fit and the largest difference between the starts' fits after
    matching their columns (how unique the recovery is)."""
    import torch
    from scipy.optimize import linear_sum_assignment

    dims = rotated.shape[1]
    points = torch.tensor(rotated, dtype=torch.float64)
    basis = torch.tensor(regular_simplex_basis(dims + 1), dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    fits = []
    for _ in range(starts):
        start = torch.linalg.qr(torch.randn(dims, dims, generator=generator, dtype=torch.float64))[0]
        skew = torch.zeros(dims, dims, dtype=torch.float64, requires_grad=True)

        def probabilities() -> torch.Tensor:
            return points @ (start @ torch.matrix_exp(skew - skew.T)) @ basis.T + 1.0 / (dims + 1)

        optimiser = torch.optim.LBFGS([skew], max_iter=500, line_search_fn="strong_wolfe")

        def closure():
            optimiser.zero_grad()
            loss = (torch.relu(-probabilities()) ** 2).sum()
            loss.backward()
            return loss

        for _ in range(5):
            optimiser.step(closure)
        with torch.no_grad():
            fitted = probabilities()
            fits.append((float((torch.relu(-fitted) ** 2).sum()), fitted.numpy()))
    best = min(fits, key=lambda fit: fit[0])[1]
    spread = 0.0
    for _, other in fits:
        _, columns = linear_sum_assignment(-np.corrcoef(best.T, other.T)[:dims + 1, dims + 1:])
        spread = max(spread, float(np.abs(best - other[:, columns]).max()))
    return best, spread


def name_columns(probabilities: np.ndarray) -> np.ndarray:
    """Column order that puts the recovered columns in NAMES order (each prototype's most probable column)."""
    at_prototypes = probabilities[grid_index(np.array(PROTOTYPES))]
    order = at_prototypes.argmax(axis=1)
    if len(set(order.tolist())) != len(NAMES):
        raise ValueError(f"the prototypes do not pick one column per name: {order.tolist()}")
    return order


def build(source_cpp: Path, out: Path = TABLE, starts: int = 8) -> dict:
    rotated = read_rotated_table(source_cpp)
    largest = float(np.linalg.norm(rotated, axis=1).max())
    if abs(largest - np.sqrt(10 / 11)) > 1e-3:
        raise ValueError(f"largest row norm {largest:.5f}, not sqrt(10/11): not an orthonormal centred basis")
    probabilities, spread = recover_probabilities(rotated, starts=starts)
    if spread > MAX_SPREAD:
        raise ValueError(f"the random starts disagree by {spread:.4f} (> {MAX_SPREAD}): the recovery is not unique")
    probabilities = np.clip(probabilities[:, name_columns(probabilities)], 0.0, 1.0)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    np.savez_compressed(out, probabilities=np.round(probabilities * 255).astype(np.uint8), names=np.array(NAMES))
    return {"rows": len(rotated), "starts_agree_within": round(spread, 4), "out": str(out),
            "sha256": file_sha256(out)}


def fetch_source(folder: Path) -> Path:
    """featureColorName.cpp from the pinned opencv-contrib sdist on PyPI (downloaded, sha256 checked)."""
    import hashlib
    import tarfile
    import urllib.request

    archive = Path(folder) / SDIST_URL.rsplit("/", 1)[1]
    digest = hashlib.sha256()
    with urllib.request.urlopen(SDIST_URL, timeout=60) as response, open(archive, "wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != SDIST_SHA256:
        raise RuntimeError(f"{archive.name}: sha256 {digest.hexdigest()}, expected {SDIST_SHA256}")
    with tarfile.open(archive) as tar:
        member = next(m for m in tar if m.name.endswith(SOURCE_MEMBER))
        source = Path(folder) / "featureColorName.cpp"
        source.write_bytes(tar.extractfile(member).read())
    return source


def compare_tables(rebuilt: Path, shipped: Path = TABLE) -> dict:
    """How far a rebuilt table is from the shipped one: largest difference in 8-bit steps, and the share of
    RGB cells whose most probable name differs."""
    with np.load(rebuilt) as a, np.load(shipped) as b:
        if tuple(a["names"]) != tuple(b["names"]):
            raise ValueError(f"names differ: {tuple(a['names'])} vs {tuple(b['names'])}")
        new, old = a["probabilities"].astype(np.int16), b["probabilities"].astype(np.int16)
    return {"max_step_difference": int(np.abs(new - old).max()),
            "names_differ_frac": float((new.argmax(axis=1) != old.argmax(axis=1)).mean())}


def check(starts: int = 8) -> dict:
    """Download the source, rebuild the table, compare it with the shipped one (fails past one 8-bit step)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        rebuilt = Path(folder) / "rebuilt.npz"
        built = build(fetch_source(Path(folder)), rebuilt, starts)
        compared = compare_tables(rebuilt)
    if compared["max_step_difference"] > 1:
        raise SystemExit(f"the rebuilt table differs from {TABLE.name}: {compared}")
    return {**built, **compared, "out": "(temporary)"}


def main() -> None:
    parser = argparse.ArgumentParser(description="Rebuild colour_names.npz from OpenCV contrib's featureColorName.cpp, "
                                                 "or --check it against the pinned source on PyPI")
    parser.add_argument("source_cpp", type=Path, nargs="?", help="featureColorName.cpp (not with --check)")
    parser.add_argument("--out", type=Path, default=TABLE)
    parser.add_argument("--starts", type=int, default=8, help="random starts of the rotation fit")
    parser.add_argument("--check", action="store_true",
                        help="download the pinned opencv-contrib sdist (152 MB), rebuild, compare with the shipped table")
    args = parser.parse_args()
    if args.check:
        print(check(args.starts))
    elif args.source_cpp is None:
        parser.error("give featureColorName.cpp, or --check")
    else:
        print(build(args.source_cpp, args.out, args.starts))


if __name__ == "__main__":
    main()
