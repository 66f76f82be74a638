"""What `dssl models` lists: every encoder flavour with its size, every method with its views, every modality.

Sizes are counted, not quoted: each encoder is built once on the CPU for the default input of the modality it
reads (ViTs: the default 3×32×32 image; point encoders: the default LiDAR point patches), so the numbers stay
true when a flavour changes. A ViT's count on audio differs only by its patch embedding (1 input channel).
"""

from __future__ import annotations

from dataclasses import dataclass

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.methods.registry import method_names, view_spec_for
from distributed_ssl.modalities.input_shape import MODALITY_NAMES, describe_input
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.models.registry import POINT_FLAVOURS, VIT_FLAVOURS, build_encoder, encoder_names


@dataclass(frozen=True)
class EncoderEntry:
    name: str
    family: str  # "vit" (images, spectrograms) or "point" (point patches)
    width: int
    depth: int
    heads: int
    parameters: int
    counted_on: str  # the input the count was made for, e.g. "3×32×32 image"


def default_config(modality: str) -> SSLConfig:
    return SSLConfig.model_validate({"modality": {"name": modality}})


def _width(name: str) -> int:
    return (VIT_FLAVOURS.get(name) or POINT_FLAVOURS[name])[0]


def encoder_catalog() -> list[EncoderEntry]:
    """Every registered encoder, with its parameter count on the default input of the modality it reads."""
    entries = []
    for name in sorted(encoder_names(), key=lambda n: (n not in VIT_FLAVOURS, _width(n))):
        if name in VIT_FLAVOURS:
            family, modality, (width, depth, heads) = "vit", "image", VIT_FLAVOURS[name]
        else:
            family, modality, (width, depth, heads, _) = "point", "lidar", POINT_FLAVOURS[name]
        cfg = default_config(modality)
        encoder = build_encoder(name, **build_modality(cfg).encoder_kwargs())
        entries.append(EncoderEntry(name, family, width, depth, heads, sum(p.numel() for p in encoder.parameters()),
                                    describe_input(cfg)))
    return entries


def method_views(name: str) -> str:
    """`2 strong views`, `1 light view + random patch mask`, ...: what the method asks of the data side."""
    spec = view_spec_for(SSLConfig.model_validate({"method": {"name": name}}))
    text = f"{spec.num_views} {spec.augment} view{'s' if spec.num_views > 1 else ''}"
    if spec.num_local_views:
        text += f" + {spec.num_local_views} local views"
    if spec.mask:
        text += f" + {spec.mask_kind} patch mask"
    return text


def format_catalog() -> str:
    """The text `dssl models` prints."""
    lines = ["encoders (model.encoder); parameters counted on the input shown:",
             f"  {'name':12s} {'family':6s} {'width':>5s} {'depth':>5s} {'heads':>5s} {'parameters':>12s}  input"]
    for e in encoder_catalog():
        lines.append(f"  {e.name:12s} {e.family:6s} {e.width:5d} {e.depth:5d} {e.heads:5d} {e.parameters:12,d}  "
                     f"{e.counted_on}")
    lines.append("methods (method.name):")
    lines += [f"  {name:12s} {method_views(name)}" for name in method_names()]
    lines.append("modalities (modality.name); default model input per sample:")
    for name in MODALITY_NAMES:
        family = "point_*" if name == "lidar" else "vit_*"
        lines.append(f"  {name:12s} {describe_input(default_config(name)):28s} encoders: {family}")
    return "\n".join(lines)
