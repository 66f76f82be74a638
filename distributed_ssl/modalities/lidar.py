"""LiDAR modality: decode variable-size clouds to a fixed point count, augment, tokenise into point patches.

A view is one fixed-shape array [B, G, 1 + K, 4] (see `point_tokenizer`), so the pipeline and engine move it like
any other view; masks hide whole patches, exactly as for image patches.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from distributed_ssl.config.method_configs import MaskConfig
from distributed_ssl.config.modality_configs import LidarAugmentConfig, LidarConfig
from distributed_ssl.modalities.base import register_modality
from distributed_ssl.modalities.decode_errors import RecordDecodeError
from distributed_ssl.modalities.masking import point_masks
from distributed_ssl.modalities.point_augment import light_points, local_points, strong_points
from distributed_ssl.modalities.point_tokenizer import tokenize
from distributed_ssl.modalities.view_spec import ViewSpec

POINT_CHANNELS = 4  # x, y, z, intensity
HEIGHT_BANDS = 4  # modality.pooling=height_bands: quarters of the patches by centre height


@register_modality("lidar")
@dataclass(frozen=True)
class LidarModality:
    """Reads `modality.*` (`config`), `augment.*` and the method's `mask`; point patches have no patch_size."""

    config: LidarConfig
    augment: LidarAugmentConfig
    mask: MaskConfig
    record_columns = ["id", "points", "num_points"]

    def decode(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        """Records → float [B, num_points, 4]: a fixed subset of each cloud, centred, in units of coord_scale.

        The subset is drawn with a generator seeded by the record id, so a record decodes identically in every
        epoch and in evaluation; clouds with fewer points are resampled with replacement.
        """
        n, scale = self.config.num_points, self.config.coord_scale
        out = np.empty((len(batch["points"]), n, POINT_CHANNELS), dtype=np.float32)
        for i, data in enumerate(batch["points"]):
            rid = str(batch["id"][i]) if "id" in batch else str(i)
            count = int(batch["num_points"][i])
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise RecordDecodeError(f"record {rid!r}: points are {type(data).__name__}, not float32 bytes")
            if count < 1 or len(data) != count * POINT_CHANNELS * 4:
                raise RecordDecodeError(f"record {rid!r}: {len(data)} bytes of points do not match "
                                        f"num_points={count} × 4 float32")
            pts = np.frombuffer(data, dtype="<f4").reshape(count, POINT_CHANNELS)
            rng = np.random.default_rng(zlib.crc32(rid.encode()))
            idx = rng.choice(count, n, replace=count < n)
            sub = pts[idx].astype(np.float32)
            if not np.isfinite(sub).all():
                raise RecordDecodeError(f"record {rid!r}: points contain NaN or infinity")
            sub[:, :3] = (sub[:, :3] - sub[:, :3].mean(axis=0, dtype=np.float64)) / scale
            if not np.isfinite(sub).all():  # coordinates near float32's limit overflow once centred
                raise RecordDecodeError(f"record {rid!r}: coordinates overflow float32 once centred")
            out[i] = sub
        return torch.from_numpy(out)

    def _tokens(self, points: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        return tokenize(points, self.config.num_groups, self.config.group_size, gen)

    def make_views(self, raw: torch.Tensor, spec: ViewSpec, gen: torch.Generator) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for v in range(spec.num_views):
            if spec.augment == "strong":
                points = strong_points(raw, self.augment, gen)
            elif spec.augment == "light":
                points = light_points(raw, self.augment, gen)
            else:
                points = raw
            out[f"view_{v}"] = self._tokens(points, gen).numpy().astype(np.float32)
        if spec.num_local_views:
            num_points, num_groups = self.local_shape(spec)
            for v in range(spec.num_local_views):
                points = local_points(raw, spec.local_scale, num_points, self.augment, gen)
                tokens = tokenize(points, num_groups, self.config.group_size, gen)
                out[f"local_{v}"] = tokens.numpy().astype(np.float32)
        if spec.mask:  # multi-block masks group patches by the centres of the first view (row 0 of each patch)
            centres = torch.from_numpy(out["view_0"][:, :, 0, :3])
            out.update(point_masks(spec, centres, self.mask, gen))
        return out

    def local_shape(self, spec: ViewSpec) -> tuple[int, int]:
        """(points, point patches) of a local view: `spec.local_size` of a global view's, enough for one patch."""
        m = self.config
        groups = max(1, int(round(m.num_groups * spec.local_size)))
        points = max(m.group_size, groups, int(round(m.num_points * spec.local_size)))
        return points, groups

    def eval_inputs(self, raw: torch.Tensor) -> torch.Tensor:
        return self._tokens(raw, None)

    def num_patches(self) -> int:
        return self.config.num_groups

    def encoder_kwargs(self) -> dict[str, Any]:
        return {"num_groups": self.config.num_groups, "group_size": self.config.group_size,
                "point_channels": POINT_CHANNELS,
                "height_bands": HEIGHT_BANDS if self.config.pooling == "height_bands" else 0}

    def preview(self, batch: dict[str, np.ndarray], path: str) -> None:
        """Top-down scatter of each view's patches (one colour per patch; hidden patches grey)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        views = sorted(k for k in batch if k.startswith("view_"))
        rows = min(4, len(batch[views[0]]))
        fig, axes = plt.subplots(rows, len(views), figsize=(3 * len(views), 3 * rows), squeeze=False)
        for r in range(rows):
            for col, v in enumerate(views):
                tokens = batch[v][r]  # [G, 1 + K, 4]
                xyz = tokens[:, 1:, :3] + tokens[:, :1, :3]
                colour = np.repeat(np.arange(len(tokens), dtype=float), xyz.shape[1])
                if "mask" in batch and col == 0:
                    colour[np.repeat(batch["mask"][r], xyz.shape[1])] = np.nan
                ax = axes[r][col]
                ax.scatter(xyz[..., 0].ravel(), xyz[..., 1].ravel(), c=colour, s=1,
                           cmap=plt.get_cmap("tab20").with_extremes(bad="lightgrey"), plotnonfinite=True)
                ax.set_aspect("equal")
                ax.set_axis_off()
                if r == 0:
                    ax.set_title(v + (" (grey: hidden)" if "mask" in batch and col == 0 else ""), fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
