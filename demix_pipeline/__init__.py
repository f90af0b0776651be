"""demix: builds the DEMIX audio-video dataset (shots, demixing, filters, captions, subsets)."""
from demix_pipeline._env import apply_offline_defaults

__version__ = "0.1.0"

apply_offline_defaults()
