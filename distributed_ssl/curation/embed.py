"""`dssl data embed`: every record of a shard folder through a trained encoder, as Ray Data batch inference.

An actor pool (`ActorPoolStrategy`) loads the encoder once per actor and streams batches through it; with GPUs in
the cluster each actor takes one, so the same command uses every GPU. Output: Parquet files of `id` +
`embedding` (fixed-size float32 lists) and `embeddings.json` describing them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch

from distributed_ssl.data.bad_records import split_good_bad
from distributed_ssl.data.manifest import DatasetError, check_shard_schemas, load_manifest, shard_paths
from distributed_ssl.data.schemas import extension_type_in
from distributed_ssl.data.shard_reader import checked_table
from distributed_ssl.util import storage

log = logging.getLogger("distributed_ssl")
EMBEDDINGS_META = "embeddings.json"


class EncoderEmbedder:
    """A Ray Data actor: decodes a batch of records like the kNN probe does and returns their embeddings."""

    def __init__(self, run_dir: str, threads: int = 1):
        from distributed_ssl.evaluation.evaluate_run import load_encoder
        from distributed_ssl.modalities.registry import build_modality

        torch.set_num_threads(threads)
        self.cfg, encoder = load_encoder(run_dir)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.encoder = encoder.to(self.device)
        self.modality = build_modality(self.cfg)

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        try:
            raw = self.modality.decode(batch)
        except Exception:  # undecodable records get no embedding; they are named in the log
            good, bad = split_good_bad(self.modality.decode, batch)
            for item in bad:
                log.warning("record %s not embedded: %s", item["id"], item["reason"])
            batch = {k: np.asarray(v)[good] for k, v in batch.items()}
            raw = self.modality.decode(batch)
        inputs = self.modality.eval_inputs(raw).to(self.device)
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
    from distributed_ssl.modalities.registry import build_modality

    cfg, _ = load_encoder(run_dir)
    manifest = load_manifest(shards)
    if manifest.modality != cfg.modality.name:
        raise DatasetError(f"{shards} holds {manifest.modality} records, but the encoder of {run_dir} was "
                           f"trained on {cfg.modality.name}")
    check_shard_schemas(shards, manifest)  # exact schemas, no extension types; Ray Data refuses pickled columns
    ensure_ray(cfg, min_cpus=(actors or 1) * cpus_per_actor + 1)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = actors or max(gpus, 1)
    ray.data.DataContext.get_current().enable_progress_bars = True
    fs, _ = storage.resolve(shards)
    columns = build_modality(cfg).record_columns
    paths = shard_paths(shards, manifest)
    # At least a few blocks per actor, or a small shard folder arrives as one block and one actor does all.
    ds = ray.data.read_parquet(paths, filesystem=fs, columns=columns, override_num_blocks=max(len(paths), 4 * actors))
    ds = ds.map_batches(EncoderEmbedder, fn_constructor_kwargs={"run_dir": storage.normalize(run_dir),
                                                                "threads": max(int(cpus_per_actor), 1)},
                        batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
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


def _read_embedding_file(fs: pafs.FileSystem, path: str) -> pa.Table:
    """The id and embedding columns of one embedding file, refused if either is not of the type embed writes."""
    schema = pq.read_schema(path, filesystem=fs)
    if "id" not in schema.names or "embedding" not in schema.names:
        raise DatasetError(f"{path}: embedding files need columns id and embedding, got {schema.names}")
    for name in ("id", "embedding"):
        extension = extension_type_in(schema.field(name))
        if extension is not None:
            raise DatasetError(f"{path}: column {name!r} has the Arrow extension type {extension!r}")
    embedding = schema.field("embedding").type
    id_type = schema.field("id").type
    if not (pa.types.is_string(id_type) or pa.types.is_large_string(id_type)) or not (
            pa.types.is_fixed_size_list(embedding) and embedding.value_type == pa.float32()):
        raise DatasetError(f"{path}: expected id: string and embedding: fixed_size_list<float>, got "
                           f"id: {id_type}, embedding: {embedding}")
    return checked_table(pq.read_table(path, filesystem=fs, columns=["id", "embedding"]), path)


def load_embeddings(uri: str) -> tuple[list[str], torch.Tensor]:
    """(ids, embeddings [N, D]) of an embedding folder, sorted by id so any actor layout reads the same."""
    fs, root = storage.resolve(uri)
    if not storage.exists(fs, root):
        raise DatasetError(f"embeddings not found: {uri} (make them with `dssl data embed`)")
    files = parquet_files(uri)
    if not files:
        raise DatasetError(f"{uri} holds no embedding Parquet files (make them with `dssl data embed`)")
    table = pa.concat_tables([_read_embedding_file(fs, f) for f in files]).sort_by("id")
    column = table["embedding"].combine_chunks()
    dim = column.type.list_size
    values = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return table["id"].to_pylist(), torch.from_numpy(values.astype(np.float32, copy=True))
