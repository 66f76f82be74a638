"""The `modality` section: one class per modality, a pydantic union discriminated on `modality.name`, and the
`augment` section each modality reads.

The classes live here, not beside the modalities (modalities/), because `SSLConfig` needs them and config sits
below modalities in the layers (docs/architecture.md). A modality's implementation is registered under the same
name (modalities/registry.py); `register_modality` refuses a name that has no class here.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from distributed_ssl.config.sections import Section

# ---- the augment section: which keys exist depends on the modality ---------------------------------------------


class AugmentKeys(Section):
    """Base of the `augment` variants. `kind` is not a user key: the loader sets it from `modality.name`."""

    kind: str = Field(exclude=True, repr=False)


class ImageAugmentConfig(AugmentKeys):
    """Random resized crop, flip, colour jitter, grayscale, blur (modalities/image_augment.py)."""

    kind: Literal["image"] = Field("image", exclude=True, repr=False)
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
    def _ranges(self) -> ImageAugmentConfig:
        if self.crop_scale_min > self.crop_scale_max:
            raise ValueError("crop_scale_min must not exceed crop_scale_max")
        if self.crop_ratio_min > self.crop_ratio_max:
            raise ValueError("crop_ratio_min must not exceed crop_ratio_max")
        if self.blur_sigma_min > self.blur_sigma_max:
            raise ValueError("blur_sigma_min must not exceed blur_sigma_max")
        return self


class AudioAugmentConfig(AugmentKeys):
    """Waveform gain, shift and mixing, then SpecAugment on the log-mel (modalities/audio_augment.py)."""

    kind: Literal["audio"] = Field("audio", exclude=True, repr=False)
    audio_gain_db: float = Field(6.0, ge=0, description="Random gain in [-x, +x] dB.")
    audio_shift_seconds: float = Field(0.1, ge=0, description="Random circular time shift up to ±x seconds.")
    audio_mix_prob: float = Field(0.5, ge=0, le=1, description="Chance of mixing in another clip of the batch.")
    audio_mix_snr_min_db: float = Field(5.0, description="SNR range of the mixed-in clip, in dB.")
    audio_mix_snr_max_db: float = Field(20.0)
    specaug_masks: int = Field(1, ge=0, description="SpecAugment: time masks and frequency masks per view.")
    specaug_time_width: int = Field(8, ge=0, description="SpecAugment: widest time mask, in frames.")
    specaug_freq_width: int = Field(4, ge=0, description="SpecAugment: widest frequency mask, in mel bands.")

    @model_validator(mode="after")
    def _ranges(self) -> AudioAugmentConfig:
        if self.audio_mix_snr_min_db > self.audio_mix_snr_max_db:
            raise ValueError("audio_mix_snr_min_db must not exceed audio_mix_snr_max_db")
        return self


class LidarAugmentConfig(AugmentKeys):
    """Rotation about z, scaling, jitter, dropout and a random crop of a cloud (modalities/point_augment.py)."""

    kind: Literal["lidar"] = Field("lidar", exclude=True, repr=False)
    point_rotation_deg: float = Field(180.0, ge=0, le=180, description="Random rotation about z in ±x degrees.")
    point_scale_min: float = Field(0.8, gt=0)
    point_scale_max: float = Field(1.2, gt=0)
    point_jitter_sigma: float = Field(0.01, ge=0, description="Gaussian jitter per coordinate, in model units.")
    point_dropout_max: float = Field(0.3, ge=0, lt=1, description="Drop a random fraction in [0, x] of points.")
    point_crop_min: float = Field(0.6, gt=0, le=1,
                                  description="Keep the nearest fraction in [x, 1] of points around a random one.")

    @model_validator(mode="after")
    def _ranges(self) -> LidarAugmentConfig:
        if self.point_scale_min > self.point_scale_max:
            raise ValueError("point_scale_min must not exceed point_scale_max")
        return self


AugmentConfig = Annotated[ImageAugmentConfig | AudioAugmentConfig | LidarAugmentConfig,
                          Field(discriminator="kind")]
AUGMENT_CONFIGS: dict[str, type[AugmentKeys]] = {
    c.model_fields["kind"].default: c for c in (ImageAugmentConfig, AudioAugmentConfig, LidarAugmentConfig)}


# ---- one class per modality --------------------------------------------------------------------------------------


class ModalityKeys(Section):
    """Base of every modality's config: `name` picks the class; `augment_config` is the class of its `augment`."""

    name: str
    augment_config: ClassVar[type[AugmentKeys]]


class ImageConfig(ModalityKeys):
    name: Literal["image"] = "image"
    augment_config: ClassVar[type[AugmentKeys]] = ImageAugmentConfig
    image_size: int = Field(32, ge=8, description="Side of the square a decoded image is resized to.")
    channels: Literal[1, 3] = 3
    square: Literal["crop", "squash"] = Field(
        "crop", description="How a non-square image becomes image_size x image_size: crop the central square of "
        "the stored image (aspect ratio kept), or squash the whole image.")
    jpeg_draft: bool = Field(
        True, description="Decode JPEGs much larger than image_size at 1/2, 1/4 or 1/8 scale (Pillow's draft "
        "mode), never below what the resize needs: a faster decode, nearly the same pixels.")
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)


class AudioConfig(ModalityKeys):
    """Clips are resampled to sample_rate, cut to clip_seconds, turned into a log-mel spectrogram."""

    name: Literal["audio"] = "audio"
    augment_config: ClassVar[type[AugmentKeys]] = AudioAugmentConfig
    sample_rate: int = Field(16000, ge=1000, description="Hz that every clip is resampled to.")
    clip_seconds: float = Field(1.0, gt=0, description="Duration of a view (random crop or pad).")
    max_seconds: float = Field(10.0, gt=0, description="Longer clips are centre-cut to this when decoded.")
    n_fft: int = Field(512, ge=16, description="STFT window and FFT length in samples.")
    hop_length: int = Field(256, ge=1, description="STFT hop in samples.")
    n_mels: int = Field(32, ge=4, description="Mel bands (the spectrogram's height).")
    f_min: float = Field(0.0, ge=0, description="Lowest mel filter edge in Hz.")
    f_max: float | None = Field(None, gt=0, description="Highest mel filter edge in Hz; None = Nyquist.")
    pooling: Literal["mean", "bands"] = Field(
        "mean", description="How the encoder's patch tokens become one embedding (what heads, probes, export and "
        "`dssl data embed` read): mean = one mean over all patches; bands = a mean over time per frequency band of "
        "patches, the bands concatenated (n_mels / patch_size × width values), which keeps where in frequency a "
        "sound sits, as log-mel band statistics do.")

    @model_validator(mode="after")
    def _consistent(self) -> AudioConfig:
        if self.hop_length > self.n_fft:
            raise ValueError("hop_length must not exceed n_fft")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(f"n_mels={self.n_mels} exceeds the {self.n_fft // 2 + 1} STFT bins of n_fft={self.n_fft}")
        if self.f_max is not None and (self.f_max > self.sample_rate / 2 or self.f_max <= self.f_min):
            raise ValueError("f_max must lie in (f_min, sample_rate / 2]")
        if self.clip_seconds > self.max_seconds:
            raise ValueError("clip_seconds must not exceed max_seconds")
        return self


class LidarConfig(ModalityKeys):
    """Clouds are resampled to num_points, then tokenised into num_groups groups of group_size neighbours."""

    name: Literal["lidar"] = "lidar"
    augment_config: ClassVar[type[AugmentKeys]] = LidarAugmentConfig
    num_points: int = Field(1024, ge=16, description="Points drawn from each cloud when decoded.")
    num_groups: int = Field(32, ge=2, description="Patch centres chosen by farthest point sampling.")
    group_size: int = Field(16, ge=2, description="Nearest neighbours per patch.")
    coord_scale: float = Field(10.0, gt=0, description="Metres per model unit, after centring the cloud.")
    pooling: Literal["mean", "height_bands"] = Field(
        "mean", description="How the encoder's patch tokens become one embedding (what heads, probes, export and "
        "`dssl data embed` read): mean = one mean over all patches; height_bands = the patches ranked by the height "
        "of their centre and cut into 4 equal bands, one mean per band, concatenated (4 × width values), which "
        "keeps what stands low and what stands high apart, as height statistics do.")

    @model_validator(mode="after")
    def _consistent(self) -> LidarConfig:
        if self.num_groups > self.num_points or self.group_size > self.num_points:
            raise ValueError("num_groups and group_size must not exceed num_points")
        return self


ModalityConfig = Annotated[ImageConfig | AudioConfig | LidarConfig, Field(discriminator="name")]
MODALITY_CONFIGS: dict[str, type[ModalityKeys]] = {
    c.model_fields["name"].default: c for c in (ImageConfig, AudioConfig, LidarConfig)}
