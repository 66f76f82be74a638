"""Small built-in sample sets of every modality, for tests that need real records but not many."""

from __future__ import annotations

from pathlib import Path


def write_small_sample_sets(root: Path) -> dict[str, str]:
    """The digits; 10 words × 3 espeak-ng voices; 5 scene types × 3 sweeps. Each has train/ and val/ splits."""
    from distributed_ssl.data.sample_audio import write_spoken_words
    from distributed_ssl.data.sample_image import write_digits
    from distributed_ssl.data.sample_lidar import write_lidar_scenes

    write_digits(str(root / "digits"), shard_size=400)
    write_spoken_words(str(root / "words"), per_word=3, val_fraction=0.34, shard_size=64)
    write_lidar_scenes(str(root / "scenes"), per_class=3, val_fraction=0.34, shard_size=64)
    return {"image": str(root / "digits"), "audio": str(root / "words"), "lidar": str(root / "scenes")}
