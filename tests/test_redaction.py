import json

import pytest

from distributed_ssl.config import load_config, save_config
from distributed_ssl.config.flatten import flat_params
from distributed_ssl.launch.summary import write_summary
from distributed_ssl.tracking.mlflow_tracking import RunLogger, create_run
from distributed_ssl.tracking.redaction import redact, redact_text

SECRET = "hunter2-s3cr3t"


def test_uri_passwords_and_secret_keys_are_masked():
    assert redact_text(f"http://alice:{SECRET}@127.0.0.1:5000") == "http://alice:***@127.0.0.1:5000"
    assert SECRET not in redact_text(f"s3://bucket/x?X-Amz-Signature={SECRET}&a=1")
    assert redact({"db_password": SECRET, "nested": {"api_key": SECRET, "name": "ok"}}) == {
        "db_password": "***", "nested": {"api_key": "***", "name": "ok"}}
    assert redact("plain text") == "plain text"


@pytest.mark.reliability(failure="passwords and tokens in config values, URIs and tags",
                         response="masked as *** in MLflow params/tags, the saved config.yaml and summary.json")
def test_secrets_never_reach_mlflow_saved_config_or_summary(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    cfg = load_config(None, [f"tracking.uri=http://bob:{SECRET}@127.0.0.1:5000", f"data.train=s3://b/t?token={SECRET}"])
    run_id = create_run(uri, "e", str(tmp_path), "r", flat_params(cfg), {"note": f"https://u:{SECRET}@h/x"})
    RunLogger(uri, run_id).tags({"remote": f"gs://u:{SECRET}@bucket"})
    save_config(cfg, tmp_path / "config.yaml")
    write_summary({"tracking_uri": cfg.tracking.uri, "token": SECRET}, tmp_path / "summary.json")
    from mlflow.tracking import MlflowClient

    run = MlflowClient(uri).get_run(run_id)
    everything = json.dumps([run.data.params, run.data.tags]) + (tmp_path / "config.yaml").read_text() + (
        tmp_path / "summary.json").read_text()
    assert SECRET not in everything
    assert run.data.params["tracking.uri"] == "http://bob:***@127.0.0.1:5000"
