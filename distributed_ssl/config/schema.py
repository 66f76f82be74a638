"""The configuration tree. Every key a user, job or sweep may set lives here, with its default.

Models forbid unknown keys so that a typo (`train.epoch=5`) fails at load instead of being ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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


class ModalityConfig(_Section):
    name: Literal["image", "audio", "lidar"] = "image"
    # image
    image_size: int = Field(32, ge=8)
    channels: Literal[1, 3] = 3
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    # audio: clips are resampled to sample_rate, cut to clip_seconds, turned into a log-mel spectrogram
    sample_rate: int = Field(16000, ge=1000, description="Audio: Hz that every clip is resampled to.")
    clip_seconds: float = Field(1.0, gt=0, description="Audio: duration of a view (random crop or pad).")
    max_seconds: float = Field(10.0, gt=0, description="Audio: longer clips are centre-cut to this when decoded.")
    n_fft: int = Field(512, ge=16, description="Audio: STFT window and FFT length in samples.")
    hop_length: int = Field(256, ge=1, description="Audio: STFT hop in samples.")
    n_mels: int = Field(32, ge=4, description="Audio: mel bands (the spectrogram's height).")
    f_min: float = Field(0.0, ge=0, description="Audio: lowest mel filter edge in Hz.")
    f_max: float | None = Field(None, gt=0, description="Audio: highest mel filter edge in Hz; None = Nyquist.")
    # lidar: clouds are resampled to num_points, then tokenised into num_groups groups of group_size neighbours
    num_points: int = Field(1024, ge=16, description="LiDAR: points drawn from each cloud when decoded.")
    num_groups: int = Field(32, ge=2, description="LiDAR: patch centres chosen by farthest point sampling.")
    group_size: int = Field(16, ge=2, description="LiDAR: nearest neighbours per patch.")
    coord_scale: float = Field(10.0, gt=0, description="LiDAR: metres per model unit, after centring the cloud.")

    @model_validator(mode="after")
    def _consistent(self) -> ModalityConfig:
        if self.hop_length > self.n_fft:
            raise ValueError("hop_length must not exceed n_fft")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(f"n_mels={self.n_mels} exceeds the {self.n_fft // 2 + 1} STFT bins of n_fft={self.n_fft}")
        if self.f_max is not None and (self.f_max > self.sample_rate / 2 or self.f_max <= self.f_min):
            raise ValueError("f_max must lie in (f_min, sample_rate / 2]")
        if self.clip_seconds > self.max_seconds:
            raise ValueError("clip_seconds must not exceed max_seconds")
        if self.num_groups > self.num_points or self.group_size > self.num_points:
            raise ValueError("num_groups and group_size must not exceed num_points")
        return self


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
    # audio views
    audio_gain_db: float = Field(6.0, ge=0, description="Random gain in [-x, +x] dB.")
    audio_shift_seconds: float = Field(0.1, ge=0, description="Random circular time shift up to ±x seconds.")
    audio_mix_prob: float = Field(0.5, ge=0, le=1, description="Chance of mixing in another clip of the batch.")
    audio_mix_snr_min_db: float = Field(5.0, description="SNR range of the mixed-in clip, in dB.")
    audio_mix_snr_max_db: float = Field(20.0)
    specaug_masks: int = Field(1, ge=0, description="SpecAugment: time masks and frequency masks per view.")
    specaug_time_width: int = Field(8, ge=0, description="SpecAugment: widest time mask, in frames.")
    specaug_freq_width: int = Field(4, ge=0, description="SpecAugment: widest frequency mask, in mel bands.")
    # lidar views
    point_rotation_deg: float = Field(180.0, ge=0, le=180, description="Random rotation about z in ±x degrees.")
    point_scale_min: float = Field(0.8, gt=0)
    point_scale_max: float = Field(1.2, gt=0)
    point_jitter_sigma: float = Field(0.01, ge=0, description="Gaussian jitter per coordinate, in model units.")
    point_dropout_max: float = Field(0.3, ge=0, lt=1, description="Drop a random fraction in [0, x] of points.")
    point_crop_min: float = Field(0.6, gt=0, le=1,
                                  description="Keep the nearest fraction in [x, 1] of points around a random one.")

    @model_validator(mode="after")
    def _ranges(self) -> AugmentConfig:
        if self.crop_scale_min > self.crop_scale_max:
            raise ValueError("crop_scale_min must not exceed crop_scale_max")
        if self.crop_ratio_min > self.crop_ratio_max:
            raise ValueError("crop_ratio_min must not exceed crop_ratio_max")
        if self.blur_sigma_min > self.blur_sigma_max:
            raise ValueError("blur_sigma_min must not exceed blur_sigma_max")
        if self.audio_mix_snr_min_db > self.audio_mix_snr_max_db:
            raise ValueError("audio_mix_snr_min_db must not exceed audio_mix_snr_max_db")
        if self.point_scale_min > self.point_scale_max:
            raise ValueError("point_scale_min must not exceed point_scale_max")
        return self


class MaskConfig(_Section):
    ratio: float = Field(0.75, gt=0, lt=1, description="Fraction of patches hidden from the encoder.")
    # JEPA multi-block masks (modalities/multiblock_masking.py)
    num_targets: int = Field(4, ge=1, le=16, description="JEPA: target blocks per sample that the predictor "
                             "predicts from the context.")
    target_scale_min: float = Field(0.15, gt=0, lt=1, description="JEPA: least fraction of the patches in one "
                                    "target block (the block size is drawn once per batch).")
    target_scale_max: float = Field(0.2, gt=0, lt=1, description="JEPA: largest fraction of the patches in one "
                                    "target block.")
    target_aspect_min: float = Field(0.75, gt=0, description="JEPA: least height/width ratio of a target block "
                                     "on a patch grid (point patches ignore it).")
    target_aspect_max: float = Field(1.5, gt=0, description="JEPA: largest height/width ratio of a target block.")
    context_scale_min: float = Field(0.85, gt=0, le=1, description="JEPA: least fraction of the patches in the "
                                     "context block, before the target patches are removed from it.")
    context_scale_max: float = Field(1.0, gt=0, le=1, description="JEPA: largest fraction of the context block.")

    @model_validator(mode="after")
    def _block_ranges(self) -> MaskConfig:
        for low, high in (("target_scale_min", "target_scale_max"), ("target_aspect_min", "target_aspect_max"),
                          ("context_scale_min", "context_scale_max")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} {getattr(self, low)} exceeds {high} {getattr(self, high)}")
        return self


class ModelConfig(_Section):
    encoder: str = Field("vit_tiny", description="Registered encoder flavour, see `dssl models`.")
    patch_size: int = Field(4, ge=1)
    dim: int | None = Field(None, ge=8, description="Override the flavour's width.")
    depth: int | None = Field(None, ge=1)
    heads: int | None = Field(None, ge=1)
    init_from: str | None = Field(
        None, description="Warm start: an encoder.pt state dict (from a finished run or the model registry) loaded "
        "into the encoder before training; it must match model.encoder. A path every worker can read.")


class MethodConfig(_Section):
    name: Literal["simclr", "mae", "byol", "dino", "jepa"] = "simclr"
    temperature: float = Field(0.2, gt=0)
    proj_hidden_dim: int = Field(512, ge=8)
    proj_dim: int = Field(128, ge=8)
    gather_distributed: bool = Field(True, description="SimCLR: use negatives from every rank; "
                                       "DINO: average the teacher centre over every rank.")
    decoder_dim: int = Field(64, ge=8)
    decoder_depth: int = Field(1, ge=1)
    decoder_heads: int = Field(2, ge=1)
    norm_pix_loss: bool = True
    momentum_base: float = Field(0.996, ge=0, le=1, description="BYOL/DINO/JEPA: EMA-teacher momentum at the first "
                                 "optimizer step; it rises by a cosine to momentum_final at the last.")
    momentum_final: float = Field(1.0, ge=0, le=1, description="BYOL/DINO/JEPA: EMA-teacher momentum at the last "
                                  "step.")
    predictor_dim: int = Field(64, ge=8, description="JEPA: width of the narrow predictor transformer.")
    predictor_depth: int = Field(2, ge=1, description="JEPA: blocks of the predictor transformer.")
    predictor_heads: int = Field(2, ge=1, description="JEPA: attention heads of the predictor.")
    jepa_loss: Literal["smooth_l1", "mse"] = Field("smooth_l1", description="JEPA: distance between predicted and "
                                                   "target features (target features are layer-normed).")
    predictor_hidden_dim: int = Field(512, ge=8, description="BYOL: hidden width of the online predictor "
                                      "(proj_dim → predictor_hidden_dim → proj_dim); the projector is "
                                      "proj_hidden_dim → proj_dim.")
    dino_out_dim: int = Field(1024, ge=8, description="DINO: prototypes, the width of the head's weight-normed last "
                              "layer; the head's MLP is proj_hidden_dim wide with a proj_dim bottleneck.")
    teacher_temp: float = Field(0.07, gt=0, description="DINO: teacher softmax temperature after its warm-up "
                                "(lower sharpens the targets).")
    teacher_temp_start: float = Field(0.04, gt=0, description="DINO: teacher temperature at step 0, raised "
                                      "linearly to teacher_temp.")
    teacher_temp_warmup_fraction: float = Field(0.3, ge=0, le=1, description="DINO: fraction of the optimizer "
                                                "steps over which the teacher temperature warms up.")
    student_temp: float = Field(0.1, gt=0, description="DINO: student softmax temperature.")
    center_momentum: float = Field(0.9, ge=0, lt=1, description="DINO: EMA momentum of the teacher-output centre "
                                   "(the batch mean over every rank), which is subtracted to avoid collapse.")
    num_global_views: int = Field(2, ge=2, le=8, description="DINO: global views (view_0..) that both the teacher "
                                  "and the student see.")
    num_local_views: int = Field(4, ge=0, le=16, description="DINO: local views (local_0..) that only the student "
                                 "sees: small crops of images, short segments of audio, small regions of clouds.")
    local_crop_scale_min: float = Field(0.05, gt=0, le=1, description="DINO: least fraction of the image area, or "
                                        "of a cloud's points, that a local view is cut from.")
    local_crop_scale_max: float = Field(0.4, gt=0, le=1, description="DINO: largest such fraction.")
    local_size: float = Field(0.5, gt=0, le=1, description="DINO: a local view's size relative to a global view "
                              "(image side, audio clip length, points and point patches).")

    @model_validator(mode="after")
    def _local_crop_scale(self) -> MethodConfig:
        if self.local_crop_scale_min > self.local_crop_scale_max:
            raise ValueError(f"local_crop_scale_min {self.local_crop_scale_min} exceeds local_crop_scale_max "
                             f"{self.local_crop_scale_max}")
        return self


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
    batch_size: int = Field(256, ge=1)
    linear_l2: float = Field(1e-3, ge=0, description="Linear probe: L2 penalty on the weights (features are "
                             "standardised with the train split's statistics).")
    linear_max_iter: int = Field(100, ge=1, description="Linear probe: L-BFGS iterations (full batch, zero init).")
    linear_holdout: float = Field(0.2, gt=0, lt=1, description="Linear probe on an eval set with one split: the "
                                  "stratified, seeded fraction held out as its val split.")
    collapse_std_fraction: float = Field(0.01, ge=0, description="Collapse warning when the embedding std (of "
                                         "L2-normalised eval embeddings) falls below this fraction of 1/sqrt(dim).")
    collapse_rank_fraction: float = Field(0.05, ge=0, le=1, description="Collapse warning when the effective rank "
                                          "of the eval embeddings falls below this fraction of the dimension.")


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
    tune: TuneConfig = TuneConfig()
    retrain: RetrainConfig = RetrainConfig()
