"""Reference active speaker: any model that honours this ONNX contract, from the model store.

Contract (version 1), so an exported TalkNet-ASD or Light-ASD model can be dropped in:
- file `<store>/<asd_model>/model.onnx`;
- input `video`: float32 [1, T, 112, 112], grey face crops (luma 0-255) of one face track at 25 fps,
  each a square of 1.4 x the face box's larger side around its centre, resized to 112 x 112;
- input `audio`: float32 [1, 4T, 13], 13 MFCCs at 100 frames per second of the 16 kHz mono speech
  over the same span (python_speech_features.mfcc defaults: 25 ms windows, 10 ms hop, 26 filters,
  first coefficient replaced by log energy, samples on the int16 scale), as TalkNet's and Light-ASD's
  demos compute them; a track with gaps is scored run by run, each with the MFCCs of its own times;
- output (first): float32 [1, T] (or [T]): a speaking logit per video frame, > 0 meaning speaking.
T is dynamic. Long tracks are scored in chunks of `chunk_frames` frames. The demix side turns the
logit into a probability with a sigmoid.
"""
from __future__ import annotations

import numpy as np

from demix_pipeline.backends.asd.base import TrackCrops, aligned_runs, sigmoid

FPS = 25
MFCC_PER_FRAME = 4


def mfcc_100hz(mono16k: np.ndarray) -> np.ndarray:
    """13 MFCCs at 100 Hz of float audio in [-1, 1], on the int16 scale the TalkNet-family demos read
    wav files at (the first coefficient, log energy, is 2 ln 32768 = 20.8 higher than on [-1, 1])."""
    from python_speech_features import mfcc

    return mfcc(mono16k.astype(np.float64) * 32768.0, 16000, numcep=13, winlen=0.025, winstep=0.010).astype(np.float32)


class OnnxASD:
    name = "reference: ONNX active-speaker contract v1"

    def __init__(self, model_file, chunk_frames: int = 250, threads: int = 1, device: str = "cpu"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(model_file), options, providers=providers)
        names = {i.name for i in self.session.get_inputs()}
        if names != {"video", "audio"}:
            raise ValueError(f"{model_file}: inputs are {sorted(names)}; the active-speaker contract needs "
                             f"'video' [1,T,112,112] and 'audio' [1,4T,13] (see {__name__})")
        self.chunk_frames = chunk_frames
        self.version = f"{model_file}"

    def score(self, track: TrackCrops, speech16k: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """Speaking probability per crop. `features`: mfcc_100hz of the whole clip's speech (computed when
        not given); each run of consecutive 25 fps crops gets the MFCCs of its own times (base.aligned_runs)."""
        if not track.crops:
            return np.zeros(0, np.float32)
        features = mfcc_100hz(speech16k) if features is None else features
        out = np.zeros(len(track.crops), np.float32)
        for part, audio in aligned_runs(track.times, features, FPS, FPS * MFCC_PER_FRAME):
            video = np.stack(track.crops[part]).astype(np.float32)
            logits = []
            for a in range(0, len(video), self.chunk_frames):
                clip = video[a:a + self.chunk_frames]
                chunk = audio[a * MFCC_PER_FRAME:(a + len(clip)) * MFCC_PER_FRAME]
                result = self.session.run(None, {"video": clip[None], "audio": chunk[None]})[0]
                logits.append(np.asarray(result, np.float32).reshape(-1)[: len(clip)])
            out[part] = sigmoid(np.concatenate(logits))
        return out
