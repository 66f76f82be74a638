"""The configuration tree. Every key a user, job or sweep may set lives here, with its default.

Models forbid unknown keys so that a typo (`train.epoch=5`) fails at load instead of being ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from distributed_ssl.config.method_configs import (
    METHOD_CONFIGS,
    MaskConfig,
    MethodConfig,
    NoMaskConfig,
    SimCLRConfig,
)
from distributed_ssl.config.modality_configs import (
    MODALITY_CONFIGS,
    AugmentConfig,
    ImageAugmentConfig,
    ImageConfig,
    ModalityConfig,
)
from distributed_ssl.config.sections import Section as _Section

# Sections that are unions discriminated on `name`: section -> (classes by name, the default name).
UNION_SECTIONS = {"modality": (MODALITY_CONFIGS, "image"), "method": (METHOD_CONFIGS, "simclr")}
# Sections whose keys depend on a union section's `name`: section -> (owner section, the owner class attribute that
# names the dependent section's class).
DEPENDENT_SECTIONS = {"augment": ("modality", "augment_config"), "mask": ("method", "mask_config")}


class DataConfig(_Section):
    train: str = Field("data/digits/train", description="Shard folder or URI used for pretraining (labels ignored).")
    eval: str | None = Field(
        "data/digits",
        description="Labeled shards for the kNN probe. A folder with train/ and val/ uses train as the memory bank "
        "and val as queries; a single split is probed leave-one-out.",
    )
    shuffle: Literal["full", "local", "none"] = Field(
        "local", description="full: global random_shuffle each epoch (an all-to-all barrier); local: random block "
        "order + a shuffle buffer in each worker, streamed, which mixes only within the shards being read (our "
        "converters write every shard with the classes mixed; use full for shards written class by class); none.")
    local_shuffle_buffer: int = Field(512, ge=1)
    shuffle_seed: int | None = Field(
        None, description="Seed of the local shuffle's shard and block orders: None draws a fresh order each run "
        "and epoch; an int gives every run the same sequence of epoch orders (each epoch still differs).")
    preprocess_batch_size: int = Field(128, ge=1, description="Records per Ray Data map_batches call.")
    preprocess_cpus: float = Field(0.5, gt=0, description="CPUs each Ray Data preprocessing task reserves.")
    preprocess_tasks: int | None = Field(
        None, ge=1, description="At most this many Ray Data preprocessing tasks at once. None: the machine's core "
        "count when every Ray node runs on this machine (each task is a process that spends seconds importing "
        "torch as it starts, and a local Ray declares more CPUs than cores), no cap on a multi-machine cluster.")
    cache_raw_mb: int = Field(
        256, ge=0, description="Shard sets smaller than this are read once by the driver and kept in Ray's object "
        "store, so no epoch lists or reads files; 0 streams from storage (read_parquet) every epoch.")
    epochs_per_pass: int | None = Field(
        None, ge=1, description="Epochs streamed through one Ray Data execution of a set held in the object-store "
        "cache; None picks enough for about 50 steps a pass, so small sets with many epochs do not pay the "
        "pipeline's start-up every epoch. Streamed sets always use 1.")
    max_bad_fraction: float = Field(
        0.01, ge=0, le=1, description="Undecodable records are counted and skipped up to this fraction of "
        "data.train; one more stops the job with an error naming the record.")
    keep_ids: str | None = Field(
        None, description="A kept-ids manifest from `dssl data prune` (its kept_ids.json or the folder holding it): "
        "training reads only those records of data.train, filtered in the Ray Data stream; None reads all.")


class ModelConfig(_Section):
    encoder: str = Field("vit_tiny", description="Registered encoder flavour, see `dssl models`.")
    patch_size: int = Field(4, ge=1)
    dim: int | None = Field(None, ge=8, description="Override the flavour's width.")
    depth: int | None = Field(None, ge=1)
    heads: int | None = Field(None, ge=1)
    init_from: str | None = Field(
        None, description="Warm start: an encoder.pt state dict (from a finished run or the model registry) loaded "
        "into the encoder before training; it must match model.encoder. A path every worker can read.")


class OptimConfig(_Section):
    lr: float = Field(1e-3, gt=0)
    min_lr: float = Field(1e-5, ge=0)
    weight_decay: float = Field(0.05, ge=0)
    weight_decay_final: float | None = Field(
        None, ge=0, description="Cosine schedule of the weight decay from optim.weight_decay to this value over "
        "the run (DINO: 0.04 to 0.4); unset keeps it constant.")
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_fraction: float = Field(0.1, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0, description="Global norm clip; 0 disables.")


class DeepSpeedConfig(_Section):
    zero_stage: Literal[0, 1, 2, 3] = 2
    precision: Literal["fp32", "bf16", "bf16-mixed"] = Field(
        "fp32", description="fp32; bf16: whole-model cast (DeepSpeed bf16); bf16-mixed: fp32 weights, bf16 autocast "
        "forward (engine/precision.py)")
    offload_optimizer: bool = False
    offload_params: bool = False

    @model_validator(mode="after")
    def _offload(self) -> DeepSpeedConfig:
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage >= 1")
        if self.offload_params and self.zero_stage != 3:
            raise ValueError("offload_params needs zero_stage 3")
        return self


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    batch_size: int = Field(64, ge=2, description="Micro-batch per worker.")
    grad_accum: int = Field(1, ge=1)
    checkpoint_every: int = Field(50, ge=1, description="Optimizer steps between checkpoints.")
    log_every: int = Field(10, ge=1)
    eval_every_epochs: int = Field(1, ge=1)
    seed: int = 0


class ScalingConfig(_Section):
    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)


class RunConfig(_Section):
    dir: str = Field("runs/demo", description="Where the run's files go: a local path, or a URI every node "
                     "reaches (s3://bucket/runs/a, gs://...); credentials come from the environment.")
    name: str | None = Field(None, description="Run name in MLflow; defaults to the run dir's name.")
    keep_checkpoints: int = Field(3, ge=1)
    max_failures: int = Field(2, ge=0, description="Worker-group restarts from the last checkpoint.")
    ray_address: str | None = Field(None, description="Ray cluster address; None starts or joins a local one.")
    ray_num_cpus: int | None = Field(
        None, ge=1, description="Logical CPUs of a local Ray; defaults to enough for workers plus the data pipeline."
    )
    object_store_mb: int = Field(1024, ge=128)
    poll_interval_s: float = Field(
        0.5, gt=0, le=60, description="How often Ray Train's controller checks its workers. Every change of the "
        "run's state (workers up, a report, the end) waits for the next check; against Ray's own default of 2 s, "
        "0.5 s took a 6-step run from 28.3 to 25.5 s (benchmarks/run_overhead.py), and every sweep trial pays it.")


class TrackingConfig(_Section):
    uri: str | None = Field(None, description="MLflow tracking URI; None uses a SQLite store inside a local "
                            "run.dir. A cluster of several nodes needs a server (http://host:5000).")
    experiment: str = "distributed_ssl"
    retries: int = Field(2, ge=0, description="Retries of a failed MLflow call before it is kept in "
                         "RUN_DIR/mlflow_buffer/ (delivered later, or by `dssl sync RUN_DIR`).")
    retry_wait_s: float = Field(0.5, ge=0, description="Wait before the first retry; doubles after each one.")
    request_timeout_s: float = Field(10.0, gt=0, description="HTTP timeout of one MLflow request (tracking server).")
    log_model: bool = Field(True, description="Also log the trained encoder as an MLflow model (pytorch flavour, "
                            "signature and input example) beside encoder.pt; takes a few seconds at the end of a run.")


class EvalConfig(_Section):
    knn_k: int = Field(20, ge=1)
    knn_temperature: float = Field(0.07, gt=0)
    knn_standardize: bool = Field(True, description="kNN: scale every feature to zero mean and unit variance with "
                                  "the memory bank's statistics before the cosine similarity, as the linear probe "
                                  "and the hand-made-feature baseline do. Mean-pooled tokens share a large common "
                                  "offset that otherwise dominates the cosine; false gives the plain DINO protocol.")
    batch_size: int = Field(256, ge=1)
    linear_l2: float = Field(1e-3, ge=0, description="Linear probe: L2 penalty on the weights (features are "
                             "standardised with the train split's statistics).")
    linear_max_iter: int = Field(100, ge=1, description="Linear probe: L-BFGS iterations (full batch, zero init).")
    linear_holdout: float = Field(0.2, gt=0, lt=1, description="Linear probe on an eval set with one split: the "
                                  "stratified, seeded fraction held out as its val split.")
    collapse_std_fraction: float = Field(0.001, ge=0, description="Collapse warning when the embedding std (of "
                                         "L2-normalised eval embeddings) falls below this fraction of 1/sqrt(dim). "
                                         "Healthy encoders measured down to 0.0057 (a large shared offset shrinks it).")
    collapse_rank_fraction: float = Field(0.02, ge=0, le=1, description="Collapse warning when the effective rank "
                                          "of the eval embeddings falls below this fraction of min(records, dim). "
                                          "Healthy encoders measured down to 6.3 of 128 (0.049).")


class TuneConfig(_Section):
    """`dssl tune`: which dotted keys to search, how, and when to stop trials early."""

    space: dict[str, str] = Field(
        default_factory=dict,
        description="dotted config key -> uniform(a, b) | loguniform(a, b) | randint(a, b) | choice([...]) | grid([...])")
    num_samples: int = Field(4, ge=1, description="Trials to sample (repeats of the grid for grid search).")
    search: Literal["random", "grid", "optuna"] = "random"
    scheduler: Literal["asha", "pbt", "none"] = Field(
        "asha", description="asha: stop weak trials early; pbt: Population Based Training, which restarts weak "
        "trials from a strong trial's checkpoint with perturbed values of the swept keys; none: run all to the end.")
    metric: str = "knn_top1"
    mode: Literal["max", "min"] = "max"
    grace_period: int = Field(1, ge=1, description="ASHA: epochs every trial runs before it can be stopped.")
    reduction_factor: float = Field(2.0, gt=1)
    perturbation_interval: int = Field(1, ge=1, description="PBT: epochs between exploit/explore decisions.")
    quantile_fraction: float = Field(0.25, gt=0, le=0.5, description="PBT: fraction of trials in the bottom "
                                     "quantile, restarted from a checkpoint of one in the top quantile.")
    resample_probability: float = Field(0.25, ge=0, le=1, description="PBT: chance that an exploited key is drawn "
                                        "anew from tune.space instead of multiplied by 0.8 or 1.2.")
    pbt_synch: bool = Field(False, description="PBT: wait until every trial reaches the perturbation epoch, so "
                            "decisions compare all trials at the same epoch (slower; deterministic).")
    max_concurrent_trials: int | None = Field(
        None, ge=1, description="None: as many as the local cluster's CPUs fit, or all on a remote (autoscaling) one.")
    trial_max_failures: int = Field(1, ge=0, description="Retries of a failed trial.")
    seed: int = 0

    @field_validator("space")
    @classmethod
    def _expressions_parse(cls, space: dict[str, str]) -> dict[str, str]:
        from distributed_ssl.config.search_space import parse_expression

        for key, expr in space.items():
            try:
                parse_expression(str(expr))
            except ValueError as exc:
                raise ValueError(f"tune.space[{key!r}]: {exc}") from None
        return space


class RetrainConfig(_Section):
    """`dssl retrain`: where passes live, which registered model and alias they gate, and the promotion rule."""

    root: str = Field("runs/retrain", description="Folder or URI for pass run dirs, the lock, the history file and, "
                      "unless tracking.uri is set, the shared MLflow SQLite store that holds the model registry.")
    model_name: str = Field("dssl_encoder", min_length=1, description="Registered model name in MLflow.")
    alias: str = Field("champion", min_length=1, description="Alias that marks the production encoder.")
    metric: Literal["knn_top1"] = Field("knn_top1", description="Higher is better; measured on data.eval.")
    tolerance: float = Field(0.01, description="Promote when new >= champion - tolerance. Negative values "
                             "demand a gain of at least |tolerance|.")
    history_file: str | None = Field(None, description="JSON-lines decision log; None: ROOT/history.jsonl.")


def _name_of(section: Any, default: str) -> Any:
    if isinstance(section, BaseModel):
        return getattr(section, "name", default)
    if isinstance(section, dict):
        return section.get("name", default)
    return default


class SSLConfig(_Section):
    """`modality` and `method` are unions discriminated on their `name`; `augment` takes the keys of the selected
    modality and `mask` those of the selected method (see DEPENDENT_SECTIONS)."""

    data: DataConfig = DataConfig()
    modality: ModalityConfig = ImageConfig()
    augment: AugmentConfig = ImageAugmentConfig()
    mask: MaskConfig = NoMaskConfig()
    model: ModelConfig = ModelConfig()
    method: MethodConfig = SimCLRConfig()
    optim: OptimConfig = OptimConfig()
    deepspeed: DeepSpeedConfig = DeepSpeedConfig()
    train: TrainConfig = TrainConfig()
    scaling: ScalingConfig = ScalingConfig()
    run: RunConfig = RunConfig()
    tracking: TrackingConfig = TrackingConfig()
    eval: EvalConfig = EvalConfig()
    tune: TuneConfig = TuneConfig()
    retrain: RetrainConfig = RetrainConfig()

    @model_validator(mode="before")
    @classmethod
    def _select_variants(cls, data: Any) -> Any:
        """Default `modality.name` and `method.name`, and tag `augment` and `mask` with the variant their owner
        selects, so that each is validated against the keys of the selected modality or method."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for section, (_, default) in UNION_SECTIONS.items():
            value = data.get(section)
            if value is None:
                data[section] = {"name": default}
            elif isinstance(value, dict) and "name" not in value:
                data[section] = {"name": default, **value}
        for section, (owner, attr) in DEPENDENT_SECTIONS.items():
            value = data.get(section)
            if value is None:
                value = {}
            if not isinstance(value, dict):
                continue
            classes, default = UNION_SECTIONS[owner]
            owner_cls = classes.get(_name_of(data.get(owner), default))
            if owner_cls is not None:  # an unknown owner name is reported on the owner's key
                value = {**value, "kind": getattr(owner_cls, attr).model_fields["kind"].default}
            data[section] = value
        return data

    @model_validator(mode="after")
    def _variants_match(self) -> SSLConfig:
        for section, (owner, attr) in DEPENDENT_SECTIONS.items():
            owner_name = getattr(self, owner).name
            expected = getattr(UNION_SECTIONS[owner][0][owner_name], attr)
            if type(getattr(self, section)) is not expected:
                raise ValueError(f"{section} holds {type(getattr(self, section)).__name__} but {owner}.name="
                                 f"{owner_name} takes {expected.__name__}")
        return self
