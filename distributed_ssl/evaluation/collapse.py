"""Collapse monitoring: two label-free numbers of the eval-set embeddings that fall when a method collapses.

- `embedding_std` (SimSiam, Chen & He 2021): the mean over dimensions of the per-dimension standard deviation of
  L2-normalised embeddings. 0 when every input maps to one vector; about 1/sqrt(D) for embeddings spread evenly
  over the sphere, so it is compared with `std_fraction / sqrt(D)`.
- `effective_rank` (RankMe, Garrido et al. 2023): exp of the entropy of the normalised singular values of the
  centred [N, D] embedding matrix. 1 for rank-1 (or constant) embeddings, up to D for isotropic ones; dimensional
  collapse shows up here even when `embedding_std` still looks healthy. Centring keeps the offset that every
  embedding shares (large in untrained transformers, whose mean-pooled tokens point one way) from counting as
  the one dominant direction.

Non-contrastive methods (BYOL, DINO, JEPA) can reach a low loss with a collapsed encoder, which the loss curve
never shows; these metrics do.

The default limits are set from measured runs, so that the warning means collapse and not a healthy encoder with a
shared offset: `embedding_std` is measured before centring, so a large offset shrinks it although the probes, which
standardise, still read the spread around it. 41 runs of the fifteen recipes on the source-disjoint sets had
std · sqrt(D) from 0.0057 (LiDAR BYOL/MAE/JEPA on the objects with one reflectivity per class, kNN +0.23 to
+0.28 over random init) to 0.94, and effective rank from 6.3 (LiDAR DINO, kNN +0.37 over random init, four
classes) up; the former limits (0.01 and 0.05 · 128 = 6.4) flagged four of those LiDAR encoders. A collapsed
encoder sits orders of magnitude lower: a constant output with 1e-6 noise has std · sqrt(D) about 1e-6, a rank-1
output a rank of 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from distributed_ssl.config.schema import EvalConfig


def embedding_std(feats: torch.Tensor) -> float:
    """Mean per-dimension std of the L2-normalised rows of `feats` [N, D]."""
    if feats.shape[0] < 2:
        return 0.0
    z = F.normalize(feats.double(), dim=1)
    return float(z.std(dim=0).mean())


def effective_rank(feats: torch.Tensor, eps: float = 1e-12) -> float:
    """exp(entropy of σ / Σσ) of the centred `feats` [N, D]; 1.0 when nothing varies (constant rows)."""
    x = feats.double()
    s = torch.linalg.svdvals(x - x.mean(dim=0, keepdim=True))
    total = s.sum()
    if total <= eps * max(float(x.abs().max()), 1.0):
        return 1.0
    p = s / total
    p = p[p > eps]
    return float(torch.exp(-(p * p.log()).sum()))


# the limits a run uses unless its eval config says otherwise: one source, the config's defaults
DEFAULT_STD_FRACTION = EvalConfig.model_fields["collapse_std_fraction"].default
DEFAULT_RANK_FRACTION = EvalConfig.model_fields["collapse_rank_fraction"].default
# every input on one line gives rank 1 whatever D is; a second direction of any weight lifts it towards 2
LINE_RANK = 1.5


@dataclass(frozen=True)
class CollapseReport:
    embedding_std: float
    effective_rank: float
    dim: int
    collapsed: bool
    reason: str

    def metrics(self) -> dict[str, float]:
        """What MLflow and summary.json record; `collapsed` as 0/1 so it plots next to the other curves."""
        return {"embedding_std": self.embedding_std, "effective_rank": self.effective_rank,
                "effective_rank_fraction": self.effective_rank / self.dim, "collapsed": float(self.collapsed)}


def collapse_report(feats: torch.Tensor, std_fraction: float = DEFAULT_STD_FRACTION,
                    rank_fraction: float = DEFAULT_RANK_FRACTION) -> CollapseReport:
    """Measure `feats` [N, D] and judge collapse: std below `std_fraction / sqrt(D)` (all inputs near one point)
    or effective rank below `rank_fraction · min(N, D)`, and always below 1.5 (all inputs on a line or a few
    directions)."""
    n, dim = feats.shape
    std, rank = embedding_std(feats), effective_rank(feats)
    std_limit = std_fraction / math.sqrt(dim)
    rank_limit = max(LINE_RANK, rank_fraction * min(n, dim))
    reasons = []
    if std < std_limit:
        reasons.append(f"embedding std {std:.4g} < {std_limit:.4g} (eval.collapse_std_fraction={std_fraction} "
                       f"of 1/sqrt({dim}))")
    if rank < rank_limit:
        why = ("every input on about one line" if rank_limit == LINE_RANK
               else f"eval.collapse_rank_fraction={rank_fraction} of {min(n, dim)}")
        reasons.append(f"effective rank {rank:.3g} < {rank_limit:.3g} ({why})")
    return CollapseReport(std, rank, dim, bool(reasons), "; ".join(reasons))
