"""The configuration tree. Every key a user, job or sweep may set lives here, with its default.

Models forbid unknown keys so that a typo (`train.epoch=5`) fails at load instead of being ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    train: str = Field("data/digits/train", description="Shard folder or URI used for pretraining (labels ignored).")
    eval: str | None = Field(
        "data/digits",
        description="Labeled shards for the kNN probe. A folder with train/ and val/ uses train as the memory bank "
        "and val as queries; a single split is probed leave-one-out.",
    )
    shuffle: Literal["full", "local", "none"] = Field(
        "local", description="full: global random_shuffle each epoch (an all-to-all barrier); local: random block "
        "order + a shuffle buffer in each worker, streamed; none.")
    local_shuffle_buffer: int = Field(512, ge=1)
    preprocess_batch_size: int = Field(128, ge=1, description="Records per Ray Data map_batches call.")
    preprocess_cpus: float = Field(0.5, gt=0, description="CPUs each Ray Data preprocessing task reserves.")


class ModalityConfig(_Section):
    name: Literal["image"] = "image"
    image_size: int = Field(32, ge=8)
    channels: Literal[1, 3] = 3
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)


class AugmentConfig(_Section):
    crop_scale_min: float = Field(0.25, gt=0, le=1)
    crop_scale_max: float = Field(1.0, gt=0, le=1)
    crop_ratio_min: float = Field(3 / 4, gt=0)
    crop_ratio_max: float = Field(4 / 3, gt=0)
    flip_prob: float = Field(0.5, ge=0, le=1)
    jitter_prob: float = Field(0.8, ge=0, le=1)
    jitter_strength: float = Field(0.5, ge=0, le=2)
    grayscale_prob: float = Field(0.2, ge=0, le=1)
    blur_prob: float = Field(0.2, ge=0, le=1)
    blur_sigma_min: float = Field(0.1, gt=0)
    blur_sigma_max: float = Field(1.5, gt=0)

    @model_validator(mode="after")
    def _ranges(self) -> AugmentConfig:
        if self.crop_scale_min > self.crop_scale_max:
            raise ValueError("crop_scale_min must not exceed crop_scale_max")
        if self.crop_ratio_min > self.crop_ratio_max:
            raise ValueError("crop_ratio_min must not exceed crop_ratio_max")
        if self.blur_sigma_min > self.blur_sigma_max:
            raise ValueError("blur_sigma_min must not exceed blur_sigma_max")
        return self


class MaskConfig(_Section):
    ratio: float = Field(0.75, gt=0, lt=1, description="Fraction of patches hidden from the encoder.")


class ModelConfig(_Section):
    encoder: str = Field("vit_tiny", description="Registered encoder flavour, see `dssl models`.")
    patch_size: int = Field(4, ge=1)
    dim: int | None = Field(None, ge=8, description="Override the flavour's width.")
    depth: int | None = Field(None, ge=1)
    heads: int | None = Field(None, ge=1)


class MethodConfig(_Section):
    name: Literal["simclr", "mae"] = "simclr"
    temperature: float = Field(0.2, gt=0)
    proj_hidden_dim: int = Field(512, ge=8)
    proj_dim: int = Field(128, ge=8)
    gather_distributed: bool = Field(True, description="SimCLR: use negatives from every rank.")
    decoder_dim: int = Field(64, ge=8)
    decoder_depth: int = Field(1, ge=1)
    decoder_heads: int = Field(2, ge=1)
    norm_pix_loss: bool = True


class OptimConfig(_Section):
    lr: float = Field(1e-3, gt=0)
    min_lr: float = Field(1e-5, ge=0)
    weight_decay: float = Field(0.05, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_fraction: float = Field(0.1, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0, description="Global norm clip; 0 disables.")


class DeepSpeedConfig(_Section):
    zero_stage: Literal[0, 1, 2, 3] = 2
    precision: Literal["fp32", "bf16"] = "fp32"
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
    dir: str = "runs/demo"
    name: str | None = Field(None, description="Run name in MLflow; defaults to the run dir's name.")
    keep_checkpoints: int = Field(3, ge=1)
    max_failures: int = Field(2, ge=0, description="Worker-group restarts from the last checkpoint.")
    ray_address: str | None = Field(None, description="Ray cluster address; None starts or joins a local one.")
    ray_num_cpus: int | None = Field(
        None, ge=1, description="Logical CPUs of a local Ray; defaults to enough for workers plus the data pipeline."
    )
    object_store_mb: int = Field(1024, ge=128)


class TrackingConfig(_Section):
    uri: str | None = Field(None, description="MLflow tracking URI; None uses a SQLite store inside run.dir.")
    experiment: str = "distributed_ssl"


class EvalConfig(_Section):
    knn_k: int = Field(20, ge=1)
    knn_temperature: float = Field(0.07, gt=0)
    batch_size: int = Field(256, ge=1)


class SSLConfig(_Section):
    data: DataConfig = DataConfig()
    modality: ModalityConfig = ModalityConfig()
    augment: AugmentConfig = AugmentConfig()
    mask: MaskConfig = MaskConfig()
    model: ModelConfig = ModelConfig()
    method: MethodConfig = MethodConfig()
    optim: OptimConfig = OptimConfig()
    deepspeed: DeepSpeedConfig = DeepSpeedConfig()
    train: TrainConfig = TrainConfig()
    scaling: ScalingConfig = ScalingConfig()
    run: RunConfig = RunConfig()
    tracking: TrackingConfig = TrackingConfig()
    eval: EvalConfig = EvalConfig()
