"""Scheduled retraining: new shards → warm-started training → registry version → gated promotion."""
