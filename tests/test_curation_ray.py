"""Curation on a real local Ray: embeddings from an actor pool, and training input restricted to kept ids."""

import pytest
import torch

from distributed_ssl.cli import main
from distributed_ssl.config import load_config
from distributed_ssl.config.loader import save_config
from distributed_ssl.curation.embed import embed_shards, load_embeddings
from distributed_ssl.curation.prune import read_ids
from distributed_ssl.data.kept_ids import load_kept_ids
from distributed_ssl.data.train_records import read_train_records
from distributed_ssl.methods.registry import build_encoder_for, view_spec_for
from distributed_ssl.modalities.train_dataset import build_train_dataset


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run directory as `dssl train` leaves it (config.yaml + encoder.pt) with a seeded vit_debug encoder."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg = load_config(None, ["model.encoder=vit_debug", f"run.dir={run_dir}"])
    torch.manual_seed(0)
    save_config(cfg, run_dir / "config.yaml")
    torch.save(build_encoder_for(cfg).state_dict(), run_dir / "encoder.pt")
    return run_dir


@pytest.mark.slow
def test_two_actors_embed_exactly_like_one(ray_cluster, digits, finished_run, tmp_path):
    from distributed_ssl.evaluation.evaluate_run import load_encoder
    from distributed_ssl.evaluation.labeled_set import load_labeled_split

    val = str(digits / "val")  # 359 records: actor start-up, not inference, is what this costs
    results = {}
    for actors in (1, 2):
        meta = embed_shards(str(finished_run), val, str(tmp_path / f"a{actors}"), actors=actors, batch_size=32)
        assert meta["num_records"] == 359 and meta["actors"] == actors
        results[actors] = load_embeddings(str(tmp_path / f"a{actors}"))
    (ids1, emb1), (ids2, emb2) = results[1], results[2]
    assert ids1 == ids2 == sorted(read_ids(val))
    assert emb1.shape == (359, emb1.shape[1]) and torch.allclose(emb1, emb2, atol=1e-5)
    # and both equal the encoder applied in this process, record by record
    cfg, encoder = load_encoder(finished_run)
    split = load_labeled_split(val, cfg)
    with torch.no_grad():
        direct = encoder.embed(split.inputs[:50])
    order = {rid: i for i, rid in enumerate(ids1)}
    rows = torch.tensor([order[rid] for rid in read_ids(val)[:50]])
    assert torch.allclose(emb1[rows], direct, atol=1e-4)


def test_training_input_holds_exactly_the_kept_ids(ray_cluster, digits, tmp_path):
    train = str(digits / "train")
    assert main(["data", "prune", train, str(tmp_path), "--strategy", "random", "--keep", "0.3"]) == 0
    kept = set(load_kept_ids(str(tmp_path)).ids)
    cfg = load_config(None, [f"data.train={train}", f"data.keep_ids={tmp_path}"])
    seen = read_train_records(cfg, ["id", "image"]).take_all()
    ids = [row["id"] for row in seen]
    assert len(ids) == len(kept) == round(0.3 * 1438) and set(ids) == kept
    assert build_train_dataset(cfg, view_spec_for(cfg)).count() == len(kept)  # views of kept records only
