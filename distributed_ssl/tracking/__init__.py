"""MLflow: one run per training, params from the flattened config, metrics, artifacts."""
