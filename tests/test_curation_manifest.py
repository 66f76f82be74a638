"""`dssl data prune` on real shards: its outputs, the kept-ids manifest, and step planning on kept records only."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from distributed_ssl.cli import main
from distributed_ssl.config import load_config
from distributed_ssl.curation.prune import read_ids
from distributed_ssl.data.kept_ids import load_kept_ids
from distributed_ssl.data.manifest import DatasetError, load_manifest
from distributed_ssl.launch.trainer import plan_steps


@pytest.fixture(scope="module")
def embeddings(digits, tmp_path_factory):
    """Embeddings in the `dssl data embed` format: pixels of each digit as its vector, written in shuffled order."""
    from distributed_ssl.evaluation.labeled_set import load_labeled_split

    cfg = load_config(None, [])
    split = load_labeled_split(str(digits / "train"), cfg)
    feats = split.inputs[:, 0, ::4, ::4].reshape(len(split.labels), -1).float()
    ids = read_ids(str(digits / "train"))
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(0)).tolist()
    out = tmp_path_factory.mktemp("emb")
    flat = pa.array(feats[order].numpy().reshape(-1), pa.float32())
    pq.write_table(pa.table({"id": [ids[i] for i in order],
                             "embedding": pa.FixedSizeListArray.from_arrays(flat, feats.shape[1])}),
                   out / "part-0.parquet")
    return out


def test_prune_writes_manifest_scores_plots_and_shards(digits, embeddings, tmp_path, capsys):
    train = str(digits / "train")
    out = tmp_path / "pruned"
    code = main(["data", "prune", train, str(out), "--embeddings", str(embeddings), "--keep", "0.7",
                 "--strategy", "prototype", "-k", "10", "--write-shards"])
    assert code == 0
    kept = load_kept_ids(str(out))
    assert kept.num_kept == round(0.7 * 1438) and kept.source_records == 1438 and kept.strategy == "prototype"
    scores = pq.read_table(out / "scores.parquet").to_pydict()
    assert set(scores) >= {"id", "kept", "cluster", "score"} and len(scores["id"]) == 1438
    kept_scores = [s for s, k in zip(scores["score"], scores["kept"], strict=True) if k]
    dropped_scores = [s for s, k in zip(scores["score"], scores["kept"], strict=True) if not k]
    assert min(kept_scores) >= max(dropped_scores)  # "hard" keeps the records farthest from their centroid
    assert {i for i, k in zip(scores["id"], scores["kept"], strict=True) if k} == set(kept.ids)
    for png in ("score_histogram.png", "prototypes.png"):
        assert (out / png).stat().st_size > 10_000
    assert load_manifest(str(out / "shards")).num_records == kept.num_kept
    assert set(read_ids(str(out / "shards"))) == set(kept.ids)
    assert f"data.keep_ids={out}/kept_ids.json" in capsys.readouterr().out


def test_step_planning_counts_only_kept_records(digits, tmp_path):
    train = str(digits / "train")
    assert main(["data", "prune", train, str(tmp_path), "--strategy", "random", "--keep", "0.5"]) == 0
    base = [f"data.train={train}", "scaling.num_workers=2", "train.batch_size=32", "train.epochs=3"]
    full = plan_steps(load_config(None, base), load_manifest(train))
    pruned = plan_steps(load_config(None, base + [f"data.keep_ids={tmp_path}"]), load_manifest(train))
    assert full == (1438 // 2 // 32, 3 * (1438 // 2 // 32))
    assert pruned == (719 // 2 // 32, 3 * (719 // 2 // 32))


def test_kept_ids_for_other_shards_fail_naming_the_key(digits, tmp_path):
    val = str(digits / "val")
    assert main(["data", "prune", val, str(tmp_path), "--strategy", "random", "--keep", "0.5"]) == 0
    cfg = load_config(None, [f"data.train={digits / 'train'}", f"data.keep_ids={tmp_path}/kept_ids.json"])
    with pytest.raises(DatasetError, match="data.keep_ids=.*359 records.*holds 1438 records"):
        plan_steps(cfg, load_manifest(str(digits / "train")))
    (tmp_path / "bad.json").write_text(json.dumps({"ids": []}))
    with pytest.raises(DatasetError, match="bad.json"):
        load_kept_ids(str(tmp_path / "bad.json"))


def test_prune_rejects_bad_options(digits, tmp_path):
    train = str(digits / "train")
    with pytest.raises(SystemExit, match="needs --embeddings"):
        main(["data", "prune", train, str(tmp_path), "--strategy", "balanced", "--keep", "0.5"])
    with pytest.raises(SystemExit, match="keep=1.5"):
        main(["data", "prune", train, str(tmp_path), "--strategy", "random", "--keep", "1.5"])


def _image_folder(root, shade: int) -> str:
    import io

    from PIL import Image

    from distributed_ssl.data.shard_writer import ShardWriter

    writer = ShardWriter(str(root), "image", shard_size=3)
    for i in range(6):
        buf = io.BytesIO()
        Image.new("L", (8, 8), shade + 10 * i).save(buf, format="PNG")
        writer.add({"id": f"img-{i}", "image": buf.getvalue(), "format": "png", "label": None, "source": "t"})
    writer.close()
    return str(root)


@pytest.mark.reliability(failure="data.keep_ids made from another shard folder with the same record count (and "
                                 "the same ids), or a kept_ids.json of an older release without a fingerprint",
                         response="DatasetError naming data.keep_ids and both fingerprints of the shards' checksums; "
                                  "an old file says to re-run `dssl data prune`")
def test_kept_ids_from_other_shards_of_the_same_size_are_refused(tmp_path):
    from distributed_ssl.data.manifest import manifest_fingerprint
    from distributed_ssl.data.train_records import kept_ids_for

    ours, theirs = _image_folder(tmp_path / "ours", 0), _image_folder(tmp_path / "theirs", 100)
    assert main(["data", "prune", theirs, str(tmp_path / "pruned"), "--strategy", "random", "--keep", "0.5"]) == 0
    kept_file = tmp_path / "pruned" / "kept_ids.json"
    assert load_kept_ids(str(kept_file)).source_fingerprint == manifest_fingerprint(load_manifest(theirs))
    own = load_config(None, [f"data.train={theirs}", f"data.keep_ids={kept_file}"])
    assert kept_ids_for(own, load_manifest(theirs)).num_kept == 3
    cfg = load_config(None, [f"data.train={ours}", f"data.keep_ids={kept_file}"])
    found = manifest_fingerprint(load_manifest(ours))
    with pytest.raises(DatasetError, match=f"data.keep_ids={kept_file} was made from other shards.*{found}"):
        kept_ids_for(cfg, load_manifest(ours))
    old = json.loads(kept_file.read_text())
    del old["source_fingerprint"]
    kept_file.write_text(json.dumps(old))
    with pytest.raises(DatasetError, match="no fingerprint.*re-run `dssl data prune`"):
        kept_ids_for(own, load_manifest(theirs))
