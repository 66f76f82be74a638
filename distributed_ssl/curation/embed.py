"""`dssl data embed`: every record of a shard folder through a trained encoder, as Ray Data batch inference.

An actor pool (`concurrency=`) loads the encoder once per actor and streams batches through it; with GPUs in
the cluster each actor takes one, so the same command uses every GPU. Output: Parquet files of `id` +
`embedding` (fixed-size float32 lists) and `embeddings.json` describing them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from distributed_ssl.data.bad_records import split_good_bad
from distributed_ssl.data.manifest import DatasetError, load_manifest, shard_paths
from distributed_ssl.util import storage

log = logging.getLogger("distributed_ssl")
EMBEDDINGS_META = "embeddings.json"


class EncoderEmbedder:
    """A Ray Data actor: decodes a batch of records like the kNN probe does and returns their embeddings."""

    def __init__(self, run_dir: str, threads: int = 1):
        from distributed_ssl.evaluation.evaluate_run import load_encoder
        from distributed_ssl.modalities.registry import get_modality

        torch.set_num_threads(threads)
        self.cfg, encoder = load_encoder(run_dir)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.encoder = encoder.to(self.device)
        self.modality = get_modality(self.cfg.modality.name)

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        try:
            raw = self.modality.decode(batch, self.cfg)
        except Exception:  # undecodable records get no embedding; they are named in the log
            good, bad = split_good_bad(lambda b: self.modality.decode(b, self.cfg), batch)
            for item in bad:
                log.warning("record %s not embedded: %s", item["id"], item["reason"])
            batch = {k: np.asarray(v)[good] for k, v in batch.items()}
            raw = self.modality.decode(batch, self.cfg)
        inputs = self.modality.eval_inputs(raw, self.cfg).to(self.device)
        feats = self.encoder.embed(inputs).float().cpu().numpy().astype(np.float32)
        flat = pa.array(feats.reshape(-1), pa.float32())
        return pa.table({"id": pa.array([str(i) for i in batch["id"]], pa.string()),
                         "embedding": pa.FixedSizeListArray.from_arrays(flat, feats.shape[1])})


def embed_shards(run_dir: str, shards: str, out: str, actors: int | None = None, batch_size: int = 256,
                 cpus_per_actor: float = 1.0) -> dict[str, Any]:
    """Embed every record of `shards` with the encoder of the finished run `run_dir`; returns the metadata.

    `actors` defaults to the cluster's GPU count (one GPU each), or 1 on a CPU-only cluster.
    """
    import ray
    import ray.data

    from distributed_ssl.evaluation.evaluate_run import load_encoder
    from distributed_ssl.launch.ray_runtime import ensure_ray
    from distributed_ssl.modalities.registry import get_modality

    cfg, _ = load_encoder(run_dir)
    manifest = load_manifest(shards)
    if manifest.modality != cfg.modality.name:
        raise DatasetError(f"{shards} holds {manifest.modality} records, but the encoder of {run_dir} was "
                           f"trained on {cfg.modality.name}")
    ensure_ray(cfg, min_cpus=(actors or 1) * cpus_per_actor + 1)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = actors or max(gpus, 1)
    ray.data.DataContext.get_current().enable_progress_bars = True
    fs, _ = storage.resolve(shards)
    columns = get_modality(cfg.modality.name).record_columns
    paths = shard_paths(shards, manifest)
    # At least a few blocks per actor, or a small shard folder arrives as one block and one actor does all.
    ds = ray.data.read_parquet(paths, filesystem=fs, columns=columns, override_num_blocks=max(len(paths), 4 * actors))
    ds = ds.map_batches(EncoderEmbedder, fn_constructor_kwargs={"run_dir": str(Path(run_dir).resolve()),
                                                                "threads": max(int(cpus_per_actor), 1)},
                        batch_size=batch_size, batch_format="numpy", concurrency=actors,
                        num_gpus=1 if gpus else 0, num_cpus=cpus_per_actor)
    out_fs, out_root = storage.resolve(out)
    out_fs.create_dir(out_root, recursive=True)
    ds.write_parquet(out, filesystem=out_fs)
    files = parquet_files(out)
    meta = {"run_dir": str(run_dir), "shards": shards, "modality": cfg.modality.name,
            "num_records": sum(pq.read_metadata(f, filesystem=out_fs).num_rows for f in files),
            "source_records": manifest.num_records, "actors": actors, "gpus": gpus,
            "dim": pq.read_schema(files[0], filesystem=out_fs).field("embedding").type.list_size}
    storage.write_text(out_fs, storage.join(out_root, EMBEDDINGS_META), json.dumps(meta, indent=2))
    return meta


def parquet_files(uri: str) -> list[str]:
    fs, root = storage.resolve(uri)
    from pyarrow.fs import FileSelector

    infos = fs.get_file_info(FileSelector(root))
    return sorted(i.path for i in infos if i.path.endswith(".parquet"))


def load_embeddings(uri: str) -> tuple[list[str], torch.Tensor]:
    """(ids, embeddings [N, D]) of an embedding folder, sorted by id so any actor layout reads the same."""
    fs, root = storage.resolve(uri)
    if not storage.exists(fs, root):
        raise DatasetError(f"embeddings not found: {uri} (make them with `dssl data embed`)")
    files = parquet_files(uri)
    if not files:
        raise DatasetError(f"{uri} holds no embedding Parquet files (make them with `dssl data embed`)")
    table = pa.concat_tables([pq.read_table(f, filesystem=fs) for f in files])
    if "id" not in table.column_names or "embedding" not in table.column_names:
        raise DatasetError(f"{uri}: embedding files need columns id and embedding, got {table.column_names}")
    table = table.sort_by("id")
    column = table["embedding"].combine_chunks()
    dim = column.type.list_size
    values = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return table["id"].to_pylist(), torch.from_numpy(values.astype(np.float32, copy=True))
