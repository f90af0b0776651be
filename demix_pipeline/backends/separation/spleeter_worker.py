"""Runs inside the isolated Spleeter venv (tensorflow 2.12, numpy 1.x): imports nothing of ours but stdlib.

Spleeter cannot share the main venv (it pins tensorflow 2.12.1, numpy<2, Python<3.12). The demix
stage calls `separate_files` as a Ray task whose runtime_env points `py_executable` at that venv;
arrays cross the boundary as .npy files (paths in, paths out), never as pickled numpy-2 arrays.
`python -m demix_pipeline.backends.separation.spleeter_worker make-checkpoint DIR` writes a
randomly initialised 2stems checkpoint in Spleeter's model-folder layout (for tests).
"""
from __future__ import annotations

import json
import os
import sys


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def separate_files(params_json: str, mixture_npy: str, out_dir: str) -> dict:
    """(n, 2) float32 at the model's rate in mixture_npy -> {stem: path of an (n, 2) .npy}."""
    _quiet_tensorflow()
    import numpy as np
    from spleeter.separator import Separator

    separator = _SEPARATORS.get(params_json)
    if separator is None:
        separator = _SEPARATORS[params_json] = Separator(params_json, multiprocess=False)
    stems = separator.separate(np.load(mixture_npy))
    out = {}
    for name, wave in stems.items():
        path = os.path.join(out_dir, f"{name}.npy")
        np.save(path, wave.astype("float32"))
        out[name] = path
    return out


_SEPARATORS: dict = {}


def make_random_checkpoint(model_dir: str, config: str = "2stems") -> str:
    """A random-weight Spleeter model folder: params.json, TF checkpoint, and the .probe marker."""
    _quiet_tensorflow()
    from importlib import resources

    import tensorflow as tf
    from spleeter.model import EstimatorSpecBuilder, InputProviderFactory

    params = json.loads(resources.files("spleeter.resources").joinpath(f"{config}.json").read_text())
    params["model_dir"] = os.path.abspath(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "params.json"), "w") as handle:
        json.dump(params, handle, indent=2)
    with tf.Graph().as_default():
        builder = EstimatorSpecBuilder(InputProviderFactory.get(params).get_input_dict_placeholders(), params)
        builder.outputs  # builds the network's variables
        tf.compat.v1.train.get_or_create_global_step()  # the estimator restores it too
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(session, os.path.join(model_dir, "model"))
    with open(os.path.join(model_dir, ".probe"), "w") as handle:
        handle.write("OK")  # Spleeter's marker for "model present": no download is attempted
    return os.path.join(model_dir, "params.json")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make-checkpoint":
        print(make_random_checkpoint(sys.argv[2]))
    else:
        sys.exit("usage: python -m demix_pipeline.backends.separation.spleeter_worker make-checkpoint DIR")
