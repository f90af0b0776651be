"""Media I/O only: probing, decoding, hashing, cutting. No model code lives here.

PyAV's bridge from FFmpeg's log to Python logging stays off (its default): with frame-threaded
decoding it can deadlock when a decoder is freed while a decoder thread logs (PyAV issues 751,
909; seen here as a hang in avcodec_free_context). FFmpeg's own error text for a file that will
not open is taken from the ffmpeg binary instead (media.ffmpeg.ffmpeg_error_text).
"""
