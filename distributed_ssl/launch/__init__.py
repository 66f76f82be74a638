"""Turn a config into Ray Train / Ray Tune runs."""
