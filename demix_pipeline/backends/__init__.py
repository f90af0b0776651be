"""Model and detector adapters by task. Nothing here knows about Parquet or Ray."""
