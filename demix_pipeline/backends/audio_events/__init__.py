"""Frame-level audio event tags (speech, singing, music, other sound events) from models shipped in wheels."""
