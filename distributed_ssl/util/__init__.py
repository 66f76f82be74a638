"""Small utilities every layer may use: crash-safe files, URIs, secret masking."""
