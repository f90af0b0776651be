"""Runs inside the isolated Spleeter venv (tensorflow 2.12, numpy 1.x): imports nothing of ours but stdlib.

Spleeter cannot share the main venv (it pins tensorflow 2.12.1, numpy<2, Python<3.12).
`python -m demix_pipeline.backends.separation.spleeter_worker serve MODEL_DIR` loads the model once and
then answers requests on stdin/stdout (backends/separation/spleeter_ref.py starts it beside the stage's
process): a JSON line `{"frames": n}` followed by n x 2 float32 samples in; a JSON line
`{"stems": [[name, n], ...]}` followed by each stem's n x 2 float32 samples out; `{"error": ...}` when
a request fails. Raw samples cross the boundary, never pickled numpy-2 arrays.
`python -m demix_pipeline.backends.separation.spleeter_worker make-checkpoint DIR` writes a
randomly initialised 2stems checkpoint in Spleeter's model-folder layout (for tests).
"""
from __future__ import annotations

import json
import os
import sys


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def serve(model_dir: str) -> None:
    """Load the model in `model_dir` once, then separate what arrives on stdin until it closes."""
    _quiet_tensorflow()
    import tempfile

    protocol = os.fdopen(os.dup(1), "wb")  # replies only; anything a library prints goes to stderr
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    try:
        import numpy as np
        from spleeter.separator import Separator

        with open(os.path.join(model_dir, "params.json")) as handle:
            params = json.load(handle)
        params["model_dir"] = model_dir  # where the store is here, not where it was filled
        own = tempfile.mkdtemp(prefix="demix-spleeter-")
        params_json = os.path.join(own, "params.json")
        with open(params_json, "w") as handle:
            json.dump(params, handle)
        separator = Separator(params_json, multiprocess=False)
    except Exception as exc:  # noqa: BLE001 - the caller shows it
        _reply(protocol, {"error": f"{type(exc).__name__}: {exc}"})
        return
    _reply(protocol, {"ready": True})
    while True:
        header = requests.readline()
        if not header:
            return
        frames = int(json.loads(header)["frames"])
        mixture = np.frombuffer(_read_exactly(requests, frames * 2 * 4), np.float32).reshape(frames, 2)
        try:
            stems = {name: np.ascontiguousarray(wave, dtype=np.float32)
                     for name, wave in separator.separate(mixture).items()}
        except Exception as exc:  # noqa: BLE001 - one bad request must not end the worker
            _reply(protocol, {"error": f"{type(exc).__name__}: {exc}"})
            continue
        _reply(protocol, {"stems": [[name, int(wave.shape[0])] for name, wave in stems.items()]})
        for wave in stems.values():
            protocol.write(wave.reshape(-1, 2).tobytes())
        protocol.flush()


def _reply(protocol, message: dict) -> None:
    protocol.write(json.dumps(message).encode() + b"\n")
    protocol.flush()


def _read_exactly(stream, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError(f"the request ended {left} bytes early")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


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
    elif len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit("usage: python -m demix_pipeline.backends.separation.spleeter_worker make-checkpoint DIR | serve DIR")
