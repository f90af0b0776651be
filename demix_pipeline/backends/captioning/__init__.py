"""Captioners: offline template over measured facts, reference video-LLM (transformers)."""
