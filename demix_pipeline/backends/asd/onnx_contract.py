"""Reference active speaker: any model that honours this ONNX contract, from the model store.

Contract (version 1), so an exported TalkNet-ASD or Light-ASD model can be dropped in:
- file `<store>/<asd_model>/model.onnx`;
- input `video`: float32 [1, T, 112, 112], grey face crops (luma 0-255) of one face track at 25 fps,
  each a square of 1.4 x the face box's larger side around its centre, resized to 112 x 112;
- input `audio`: float32 [1, 4T, 13], 13 MFCCs at 100 frames per second of the 16 kHz mono speech
  over the same span (python_speech_features.mfcc defaults: 25 ms windows, 10 ms hop, 26 filters,
  first coefficient replaced by log energy), as TalkNet's and Light-ASD's demos compute them;
- output (first): float32 [1, T] (or [T]): a speaking logit per video frame, > 0 meaning speaking.
T is dynamic. Long tracks are scored in chunks of `chunk_frames` frames. The demix side turns the
logit into a probability with a sigmoid.
"""
from __future__ import annotations

import numpy as np

from demix_pipeline.backends.asd.base import TrackCrops, sigmoid

FPS = 25
MFCC_PER_FRAME = 4


def mfcc_100hz(mono16k: np.ndarray) -> np.ndarray:
    from python_speech_features import mfcc

    return mfcc(mono16k.astype(np.float64), 16000, numcep=13, winlen=0.025, winstep=0.010).astype(np.float32)


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

    def score(self, track: TrackCrops, speech16k: np.ndarray) -> np.ndarray:
        """Speaking probability per crop. Crops are taken as consecutive 25 fps frames from the track's start."""
        if not track.crops:
            return np.zeros(0, np.float32)
        start = track.times[0]
        features = mfcc_100hz(speech16k[int(start * 16000):int((track.times[-1] + 1 / FPS) * 16000) + 400])
        video = np.stack(track.crops).astype(np.float32)
        out = []
        for a in range(0, len(video), self.chunk_frames):
            clip = video[a:a + self.chunk_frames]
            audio = features[a * MFCC_PER_FRAME:(a + len(clip)) * MFCC_PER_FRAME]
            if len(audio) < len(clip) * MFCC_PER_FRAME:
                audio = np.pad(audio, ((0, len(clip) * MFCC_PER_FRAME - len(audio)), (0, 0)))
            logits = self.session.run(None, {"video": clip[None], "audio": audio[None]})[0]
            out.append(np.asarray(logits, np.float32).reshape(-1)[: len(clip)])
        return sigmoid(np.concatenate(out)).astype(np.float32)
