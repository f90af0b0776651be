"""Media I/O only: probing, decoding, hashing, cutting. No model code lives here."""
