"""Speaker diarization: offline (silero VAD + resemblyzer + clustering) and reference (pyannote.audio)."""
