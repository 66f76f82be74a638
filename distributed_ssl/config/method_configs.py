"""The `method` section: one class per SSL method, a pydantic union discriminated on `method.name`, and the `mask`
section each method asks for.

The classes live here, not beside the methods (methods/), because `SSLConfig` needs them and config sits below
methods in the layers (docs/architecture.md). Keys that several methods share come from the small `*Keys` bases,
so each is declared once. A method's implementation is registered under the same name (methods/registry.py);
`register_method` refuses a name that has no class here.

A method names the class of its `mask` section (`mask_config`): MAE hides random patches (`mask.ratio`), JEPA
hides all but a context block and predicts target blocks (`mask.num_targets`, ...), the others take no mask keys.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from distributed_ssl.config.sections import Section

# ---- the mask section: which keys exist depends on the method --------------------------------------------------


class MaskKeys(Section):
    """Base of the `mask` variants. `kind` is not a user key: the loader sets it from `method.name`."""

    kind: str = Field(exclude=True, repr=False)


class NoMaskConfig(MaskKeys):
    """Methods that see whole views (SimCLR, BYOL, DINO): the mask section takes no keys."""

    kind: Literal["none"] = Field("none", exclude=True, repr=False)


class RandomMaskConfig(MaskKeys):
    """MAE: a random set of patches, an exact fraction of every sample, is hidden from the encoder."""

    kind: Literal["random"] = Field("random", exclude=True, repr=False)
    ratio: float = Field(0.75, gt=0, lt=1, description="Fraction of patches hidden from the encoder.")


class MultiblockMaskConfig(MaskKeys):
    """JEPA multi-block masks (modalities/multiblock_masking.py): a large context block, several target blocks."""

    kind: Literal["multiblock"] = Field("multiblock", exclude=True, repr=False)
    num_targets: int = Field(4, ge=1, le=16, description="Target blocks per sample that the predictor predicts "
                             "from the context.")
    target_scale_min: float = Field(0.15, gt=0, lt=1, description="Least fraction of the patches in one target "
                                    "block (the block size is drawn once per batch).")
    target_scale_max: float = Field(0.2, gt=0, lt=1, description="Largest fraction of the patches in one target "
                                    "block.")
    target_aspect_min: float = Field(0.75, gt=0, description="Least height/width ratio of a target block on a "
                                     "patch grid (point patches ignore it).")
    target_aspect_max: float = Field(1.5, gt=0, description="Largest height/width ratio of a target block.")
    context_scale_min: float = Field(0.85, gt=0, le=1, description="Least fraction of the patches in the context "
                                     "block, before the target patches are removed from it.")
    context_scale_max: float = Field(1.0, gt=0, le=1, description="Largest fraction of the context block.")

    @model_validator(mode="after")
    def _block_ranges(self) -> MultiblockMaskConfig:
        for low, high in (("target_scale_min", "target_scale_max"), ("target_aspect_min", "target_aspect_max"),
                          ("context_scale_min", "context_scale_max")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} {getattr(self, low)} exceeds {high} {getattr(self, high)}")
        return self


MaskConfig = Annotated[NoMaskConfig | RandomMaskConfig | MultiblockMaskConfig, Field(discriminator="kind")]
MASK_CONFIGS: dict[str, type[MaskKeys]] = {c.model_fields["kind"].default: c
                                           for c in (NoMaskConfig, RandomMaskConfig, MultiblockMaskConfig)}


# ---- keys shared by several methods ------------------------------------------------------------------------------


class MethodKeys(Section):
    """Base of every method's config: `name` picks the class; `mask_config` is the class of its `mask` section."""

    name: str
    mask_config: ClassVar[type[MaskKeys]] = NoMaskConfig


class ProjectionKeys(MethodKeys):
    """An MLP head on the encoder's embedding (SimCLR, BYOL projectors; DINO head's width and bottleneck)."""

    proj_hidden_dim: int = Field(512, ge=8, description="Hidden width of the head's MLP.")
    proj_dim: int = Field(128, ge=8, description="Output width of the projector (DINO: the head's bottleneck).")


class GatherKeys(MethodKeys):
    gather_distributed: bool = Field(True, description="Use statistics from every rank: SimCLR's negatives, DINO's "
                                     "teacher centre.")


class EMAKeys(MethodKeys):
    """Methods that distil from an EMA teacher (BYOL, DINO, JEPA)."""

    momentum_base: float = Field(0.996, ge=0, le=1, description="EMA-teacher momentum at the first optimizer step; "
                                 "it rises by a cosine to momentum_final at the last.")
    momentum_final: float = Field(1.0, ge=0, le=1, description="EMA-teacher momentum at the last step.")
    output_encoder: Literal["student", "teacher"] = Field(
        "student", description="The encoder a run delivers: the one its probes measure, encoder.pt holds and "
        "export writes. `teacher` is the EMA copy, an average of the student over its last steps, which I-JEPA "
        "and DINO evaluate (image JEPA on photos: +0.016 kNN over random init from the teacher against -0.028 "
        "from the student).")


# ---- one class per method ----------------------------------------------------------------------------------------


class SimCLRConfig(ProjectionKeys, GatherKeys):
    name: Literal["simclr"] = "simclr"
    temperature: float = Field(0.2, gt=0, description="InfoNCE softmax temperature.")


class BYOLConfig(ProjectionKeys, EMAKeys):
    name: Literal["byol"] = "byol"
    predictor_hidden_dim: int = Field(512, ge=8, description="Hidden width of the online predictor "
                                      "(proj_dim → predictor_hidden_dim → proj_dim); the projector is "
                                      "proj_hidden_dim → proj_dim.")


class DINOConfig(ProjectionKeys, EMAKeys, GatherKeys):
    name: Literal["dino"] = "dino"
    dino_out_dim: int = Field(1024, ge=8, description="Prototypes, the width of the head's weight-normed last "
                              "layer; the head's MLP is proj_hidden_dim wide with a proj_dim bottleneck.")
    teacher_temp: float = Field(0.07, gt=0, description="Teacher softmax temperature after its warm-up (lower "
                                "sharpens the targets).")
    teacher_temp_start: float = Field(0.04, gt=0, description="Teacher temperature at step 0, raised linearly to "
                                      "teacher_temp.")
    teacher_temp_warmup_fraction: float = Field(0.3, ge=0, le=1, description="Fraction of the optimizer steps over "
                                                "which the teacher temperature warms up.")
    freeze_prototypes_fraction: float = Field(0.0, ge=0, lt=1, description="Fraction of the optimizer steps at "
                                              "the start during which the head's prototypes get no gradient "
                                              "(DINO's freeze_last_layer): the rest of the network settles first, "
                                              "so the prototypes do not chase a moving random embedding.")
    student_temp: float = Field(0.1, gt=0, description="Student softmax temperature.")
    center_momentum: float = Field(0.9, ge=0, lt=1, description="EMA momentum of the teacher-output centre (the "
                                   "batch mean over every rank), which is subtracted to avoid collapse.")
    num_global_views: int = Field(2, ge=2, le=8, description="Global views (view_0..) that both the teacher and "
                                  "the student see.")
    num_local_views: int = Field(4, ge=0, le=16, description="Local views (local_0..) that only the student sees: "
                                 "small crops of images, short segments of audio, small regions of clouds.")
    local_crop_scale_min: float = Field(0.05, gt=0, le=1, description="Least fraction of the image area, or of a "
                                        "cloud's points, that a local view is cut from.")
    local_crop_scale_max: float = Field(0.4, gt=0, le=1, description="Largest such fraction.")
    local_size: float = Field(0.5, gt=0, le=1, description="A local view's size relative to a global view (image "
                              "side, audio clip length, points and point patches).")

    @model_validator(mode="after")
    def _local_crop_scale(self) -> DINOConfig:
        if self.local_crop_scale_min > self.local_crop_scale_max:
            raise ValueError(f"local_crop_scale_min {self.local_crop_scale_min} exceeds local_crop_scale_max "
                             f"{self.local_crop_scale_max}")
        return self


class MAEConfig(MethodKeys):
    name: Literal["mae"] = "mae"
    mask_config: ClassVar[type[MaskKeys]] = RandomMaskConfig
    decoder_dim: int = Field(64, ge=8, description="Width of the light decoder.")
    decoder_depth: int = Field(1, ge=1, description="Blocks of the decoder.")
    decoder_heads: int = Field(2, ge=1, description="Attention heads of the decoder.")
    norm_pix_loss: bool = Field(True, description="Normalise each target patch before the pixel MSE.")


class JEPAConfig(EMAKeys):
    name: Literal["jepa"] = "jepa"
    mask_config: ClassVar[type[MaskKeys]] = MultiblockMaskConfig
    predictor_dim: int = Field(64, ge=8, description="Width of the narrow predictor transformer.")
    predictor_depth: int = Field(2, ge=1, description="Blocks of the predictor transformer.")
    predictor_heads: int = Field(2, ge=1, description="Attention heads of the predictor.")
    jepa_loss: Literal["smooth_l1", "mse"] = Field("smooth_l1", description="Distance between predicted and target "
                                                   "features (target features are layer-normed).")


MethodConfig = Annotated[SimCLRConfig | BYOLConfig | DINOConfig | MAEConfig | JEPAConfig,
                         Field(discriminator="name")]
METHOD_CONFIGS: dict[str, type[MethodKeys]] = {
    c.model_fields["name"].default: c for c in (SimCLRConfig, BYOLConfig, DINOConfig, MAEConfig, JEPAConfig)}
