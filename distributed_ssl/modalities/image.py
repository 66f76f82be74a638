"""Image modality: decode encoded bytes, make augmented views and patch masks for ViT encoders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from distributed_ssl.config.method_configs import MaskConfig
from distributed_ssl.config.modality_configs import ImageAugmentConfig, ImageConfig
from distributed_ssl.data.image_io import ImageDecodeError, decode_image
from distributed_ssl.modalities.base import register_modality
from distributed_ssl.modalities.decode_errors import RecordDecodeError
from distributed_ssl.modalities.image_augment import light_view, strong_view
from distributed_ssl.modalities.masking import grid_masks
from distributed_ssl.modalities.preview_grid import save_view_grid
from distributed_ssl.modalities.view_spec import ViewSpec


@register_modality("image")
@dataclass(frozen=True)
class ImageModality:
    """Reads `modality.*` (`config`), `augment.*`, the method's `mask` and `model.patch_size`."""

    config: ImageConfig
    augment: ImageAugmentConfig
    mask: MaskConfig
    patch_size: int
    record_columns = ["id", "image"]

    def decode(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        """Encoded bytes → float [B, C, S, S] in [0, 1], resized to `modality.image_size` (`modality.square`:
        the central square of a non-square image, or the whole image squashed; `modality.jpeg_draft`).

        Pixels come from `data.image_io.decode_image`, as in the converter: high-bit modes scaled by their bit
        range, transparency composited on `ALPHA_BACKGROUND`, images over `MAX_IMAGE_PIXELS` refused."""
        size, mode = self.config.image_size, ("RGB" if self.config.channels == 3 else "L")
        out = np.empty((len(batch["image"]), size, size, self.config.channels), dtype=np.uint8)
        for i, data in enumerate(batch["image"]):
            rid = batch["id"][i] if "id" in batch else i
            try:
                out[i] = decode_image(data, mode, where=f"record {rid!r}", size=size, draft=self.config.jpeg_draft,
                                      square=self.config.square)
            except ImageDecodeError as exc:  # its message names the record already
                raise RecordDecodeError(str(exc)) from exc
            except Exception as exc:  # e.g. a TypeError for a value that is not bytes
                raise RecordDecodeError(f"record {rid!r}: cannot decode image: {exc}") from exc
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        mean = torch.tensor(self.config.mean[:c]).view(1, c, 1, 1)
        std = torch.tensor(self.config.std[:c]).view(1, c, 1, 1)
        return (x - mean) / std

    def make_views(self, raw: torch.Tensor, spec: ViewSpec, gen: torch.Generator) -> dict[str, np.ndarray]:
        size = self.config.image_size
        out: dict[str, np.ndarray] = {}
        for v in range(spec.num_views):
            if spec.augment == "strong":
                view = strong_view(raw, size, self.augment, gen)
            elif spec.augment == "light":
                view = light_view(raw, size, self.augment, gen)
            else:
                view = raw
            out[f"view_{v}"] = self._normalize(view).numpy()  # float32 already: no copy
        if spec.num_local_views:
            local_augment = self.augment.model_copy(update={"crop_scale_min": spec.local_scale[0],
                                                            "crop_scale_max": spec.local_scale[1]})
            local_px = self.local_size(spec)
            for v in range(spec.num_local_views):
                view = strong_view(raw, local_px, local_augment, gen)
                out[f"local_{v}"] = self._normalize(view).numpy()
        if spec.mask:
            side = self.config.image_size // self.patch_size
            out.update(grid_masks(spec, raw.shape[0], (side, side), self.mask, gen))
        return out

    def local_size(self, spec: ViewSpec) -> int:
        """Side of a local view: `spec.local_size` of the image side, in whole patches (at least one)."""
        p = self.patch_size
        return max(p, int(round(self.config.image_size * spec.local_size / p)) * p)

    def eval_inputs(self, raw: torch.Tensor) -> torch.Tensor:
        return self._normalize(raw)

    def num_patches(self) -> int:
        return (self.config.image_size // self.patch_size) ** 2

    def encoder_kwargs(self) -> dict[str, Any]:
        return {"input_size": (self.config.image_size, self.config.image_size),
                "in_channels": self.config.channels, "patch_size": self.patch_size}

    def preview(self, batch: dict[str, np.ndarray], path: str) -> None:
        """Save a grid: one row per sample, columns = views (and the masked view when masks exist)."""
        c = self.config.channels
        mean = np.array(self.config.mean[:c]).reshape(c, 1, 1)
        std = np.array(self.config.std[:c]).reshape(c, 1, 1)
        p = self.patch_size
        grid = self.config.image_size // p

        def hide(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
            img[:, mask.reshape(grid, grid).repeat(p, 0).repeat(p, 1)] = 0.5
            return img

        save_view_grid(batch, path, (1.6, 1.6), to_image=lambda view: (view * std + mean).clip(0, 1),
                       hide_patches=hide,
                       draw=lambda ax, img: ax.imshow(img.transpose(1, 2, 0).squeeze(),
                                                      cmap="gray" if c == 1 else None, vmin=0, vmax=1))
