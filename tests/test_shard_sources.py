"""Every modality registers its converter and sample writer, and the CLI reaches them with the options it parsed."""

from __future__ import annotations

from distributed_ssl.cli import build_parser
from distributed_ssl.config.modality_configs import MODALITY_CONFIGS
from distributed_ssl.data.shard_sources import ConvertOptions, SampleOptions, options_from, shard_sources


def test_every_modality_has_a_shard_source():
    sources = shard_sources()
    assert set(sources) == set(MODALITY_CONFIGS)
    assert all(s.files and s.sample and callable(s.convert) and callable(s.write_sample) for s in sources.values())


def test_convert_and_sample_options_come_from_the_command_line():
    parser = build_parser()
    ns = parser.parse_args(["data", "convert", "lidar", "src", "out", "--tile-size", "25", "--min-points", "64",
                            "--on-bad", "fail"])
    assert options_from(ConvertOptions, ns) == ConvertOptions(tile_size=25.0, min_points=64, on_bad="fail")
    ns = parser.parse_args(["data", "sample", "audio", "out", "--per-class", "3", "--shard-size", "64"])
    assert options_from(SampleOptions, ns) == SampleOptions(per_class=3, shard_size=64)
