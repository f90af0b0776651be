"""Media I/O only: probing, decoding, hashing, cutting. No model code lives here."""
import av.logging

# With FFmpeg's log on at ERROR, PyAV appends FFmpeg's last error line to its exceptions
# ("... last error log: moov atom not found"), which makes error rows say what went wrong.
av.logging.set_level(av.logging.ERROR)
