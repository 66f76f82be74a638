"""`dssl export`: every format of every modality's encoder embeds like the torch encoder, and so does the MLflow
model. Run dirs are made without Ray: a saved config plus the encoder.pt of a randomly initialised debug encoder."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from distributed_ssl.cli import main
from distributed_ssl.config.loader import load_config, save_config
from distributed_ssl.evaluation.labeled_set import load_labeled_split
from distributed_ssl.export import encoder_export
from distributed_ssl.export.architecture import build_from_architecture, read_architecture
from distributed_ssl.methods.registry import build_encoder_for
from tests.small_sample_sets import write_small_sample_sets

MODALITIES = ["image", "audio", "lidar"]
FORMATS = ["onnx", "safetensors", "torchscript"]
DEBUG_ENCODER = {"image": "vit_debug", "audio": "vit_debug", "lidar": "point_debug"}
INPUT_SHAPE = {"image": [3, 32, 32], "audio": [1, 32, 60], "lidar": [32, 17, 4]}
# vit_debug and point_debug are 32 wide; the audio run keeps its 8 frequency bands of patch 4 apart
# (modality.pooling=bands), so its embedding is 8 band means wide
EMBEDDING_DIM = {"image": 32, "audio": 8 * 32, "lidar": 32}


def make_run_dir(run_dir: Path, modality: str, data: str, with_eval: bool = True) -> Path:
    """A finished run as `dssl train` leaves it, as far as export reads it: config.yaml and encoder.pt."""
    run_dir.mkdir(parents=True)
    cfg = load_config(None, [f"modality.name={modality}", f"model.encoder={DEBUG_ENCODER[modality]}",
                             f"data.train={data}/train", f"data.eval={data if with_eval else run_dir / 'no-eval'}",
                             f"run.dir={run_dir}", *(["modality.pooling=bands"] if modality == "audio" else [])])
    save_config(cfg, run_dir / "config.yaml")
    torch.manual_seed(MODALITIES.index(modality))
    torch.save(build_encoder_for(cfg).state_dict(), run_dir / "encoder.pt")
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    data = write_small_sample_sets(root / "data")
    return {m: make_run_dir(root / f"run_{m}", m, data[m]) for m in MODALITIES}


def torch_reference(run_dir: Path) -> tuple[torch.Tensor, np.ndarray]:
    """(val inputs, the torch encoder's embeddings of them), loaded the way `dssl eval` loads them."""
    cfg = load_config(run_dir / "config.yaml")
    encoder = build_encoder_for(cfg)
    encoder.load_state_dict(torch.load(run_dir / "encoder.pt", weights_only=True))
    inputs = load_labeled_split(f"{cfg.data.eval}/val", cfg).inputs[:5]
    with torch.no_grad():
        return inputs, encoder.eval().embed(inputs).numpy()


def run_exported(fmt: str, path: Path, inputs: torch.Tensor) -> np.ndarray:
    """Each format through its own runtime, the way a user would load it."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(["embeddings"], {"inputs": inputs.numpy()})[0]
    if fmt == "safetensors":
        from safetensors.torch import load_file

        encoder = build_from_architecture(read_architecture(f"{path}.json"))
        encoder.load_state_dict(load_file(str(path)), strict=True)
        with torch.no_grad():
            return encoder.eval().embed(inputs).numpy()
    with torch.no_grad():
        return torch.jit.load(str(path)).eval()(inputs).numpy()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("modality", MODALITIES)
def test_export_round_trip(modality, fmt, runs, tmp_path, capsys):
    out = tmp_path / f"encoder.{fmt}"
    assert main(["export", str(runs[modality]), "--format", fmt, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    reported = float(printed.split("max abs difference ")[1].split()[0])
    assert 0 <= reported <= 1e-4
    assert f"checked on 8 records of {Path(load_config(runs[modality] / 'config.yaml').data.eval) / 'train'}" \
        in printed
    inputs, expected = torch_reference(runs[modality])
    got = run_exported(fmt, out, inputs)
    assert got.shape == (5, EMBEDDING_DIM[modality])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    arch = json.loads(Path(f"{out}.json").read_text())
    assert arch["encoder"] == DEBUG_ENCODER[modality] and arch["modality"] == modality
    assert arch["input_shape"] == ["batch", *INPUT_SHAPE[modality]] and arch["output_shape"] == ["batch", EMBEDDING_DIM[modality]]
    assert arch["flavour"] == {"dim": 32, "depth": 1, "heads": 2}
    assert arch["config"]["modality"]["name"] == modality and arch["export_format"] == fmt


def test_architecture_is_also_inside_each_file(runs, tmp_path):
    import onnx
    from safetensors import safe_open

    run = runs["image"]
    paths = {fmt: encoder_export.export_run(run, fmt, tmp_path / f"e.{fmt}").path for fmt in FORMATS}
    onnx_meta = {p.key: p.value for p in onnx.load(str(paths["onnx"])).metadata_props}
    with safe_open(str(paths["safetensors"]), "pt") as f:
        st_meta = f.metadata()
    extra = {"dssl_architecture.json": ""}
    torch.jit.load(str(paths["torchscript"]), _extra_files=extra)
    for text in (onnx_meta["dssl_architecture"], st_meta["dssl_architecture"], extra["dssl_architecture.json"]):
        assert json.loads(text)["build_kwargs"] == {"input_size": [32, 32], "in_channels": 3, "patch_size": 4,
                                                    "dim": 32, "depth": 1, "heads": 2}


def test_default_out_and_train_fallback(runs, tmp_path):
    cfg = load_config(runs["lidar"] / "config.yaml")
    run = make_run_dir(tmp_path / "run", "lidar", str(Path(cfg.data.train).parent), with_eval=False)
    report = encoder_export.export_run(run, "safetensors", records=4)
    assert report.path == run / "encoder.safetensors" and report.path.is_file()
    assert report.checked_on == cfg.data.train and report.records == 4 and report.max_abs_diff == 0.0


def test_mismatch_exits_non_zero(runs, tmp_path, monkeypatch, capsys):
    write, load, name = encoder_export.FORMATS["torchscript"]

    def off_by_a_bit(path, arch):
        run = load(path, arch)
        return lambda inputs: run(inputs) + 1e-3

    monkeypatch.setitem(encoder_export.FORMATS, "torchscript", (write, off_by_a_bit, name))
    assert main(["export", str(runs["image"]), "--format", "torchscript", "--out", str(tmp_path / "t.pt")]) == 1
    captured = capsys.readouterr()
    assert "max abs difference 0.001 " in captured.out and "differs from the torch encoder" in captured.err


def test_bad_arguments_name_the_problem(runs, tmp_path, capsys):
    with pytest.raises(SystemExit, match="at least 2 records"):
        main(["export", str(runs["image"]), "--format", "onnx", "--records", "1"])
    assert main(["export", str(tmp_path), "--format", "onnx"]) == 2
    assert f"{tmp_path} is not a finished run" in capsys.readouterr().err


@contextlib.contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """`mlflow.pyfunc.load_model("runs:/...")` resolves runs in the global tracking URI; restore it afterwards."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def test_mlflow_model_predicts_the_torch_embeddings(runs, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from distributed_ssl.export.mlflow_model import log_encoder_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("export", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    for modality in ("image", "lidar"):
        run = runs[modality]
        cfg = load_config(run / "config.yaml")
        encoder = build_encoder_for(cfg)
        encoder.load_state_dict(torch.load(run / "encoder.pt", weights_only=True))
        inputs, expected = torch_reference(run)
        model_uri = log_encoder_model(run_id, uri, encoder, inputs[:2], artifact_path=f"encoder_{modality}")
        assert model_uri == f"runs:/{run_id}/encoder_{modality}"
        with tracking_uri(uri):
            model = mlflow.pyfunc.load_model(model_uri)
        signature = model.metadata.signature
        assert signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, *INPUT_SHAPE[modality])
        assert signature.outputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, EMBEDDING_DIM[modality])
        got = model.predict(inputs.numpy())  # 5 records: the batch axis is not fixed to the example's 2
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        assert encoder.training  # the caller's module is untouched (a copy was exported)
    assert client.get_run(run_id).info.status == "RUNNING"  # logging did not end the training run
    artifacts = {a.path for a in client.list_artifacts(run_id, "encoder_image")}
    assert "encoder_image/MLmodel" in artifacts and "encoder_image/input_example.json" in artifacts
