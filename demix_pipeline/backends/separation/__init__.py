"""Source separators. Each declares its native stems; the demix stage maps them to speech/effects/music."""
