"""Representation quality, measured: kNN probes on a labeled split."""
