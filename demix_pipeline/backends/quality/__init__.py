"""Audio quality scorers: offline DNSMOS (speech) and reference audiobox-aesthetics."""
