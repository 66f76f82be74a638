"""The worker loop and everything it needs: DeepSpeed config, schedules, checkpoints, metrics."""
