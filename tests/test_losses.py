import math

import torch
import torch.nn.functional as F

from distributed_ssl.losses import InfoNCELoss, MaskedPatchMSELoss


def reference_nt_xent(z0, z1, t):
    """SimCLR's NT-Xent written out per anchor, as in the paper's Algorithm 1."""
    z = F.normalize(torch.cat([z0, z1]), dim=1)
    n = z0.shape[0]
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        num = math.exp(float(z[i] @ z[pos]) / t)
        den = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(num / den)
    return total / (2 * n)


def test_info_nce_matches_reference():
    torch.manual_seed(0)
    z0, z1 = torch.randn(6, 8), torch.randn(6, 8)
    for t in (0.1, 0.5):
        loss = InfoNCELoss(t, gather_distributed=False)(z0, z1)
        assert abs(float(loss) - reference_nt_xent(z0, z1, t)) < 1e-4


def test_info_nce_prefers_aligned_views():
    torch.manual_seed(0)
    z = torch.randn(16, 32)
    loss = InfoNCELoss(0.1)
    assert loss(z, z + 0.01 * torch.randn_like(z)) < loss(z, torch.randn_like(z))


def test_masked_mse_matches_reference():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 1, 0, 0]], dtype=torch.bool)
    expected, count = 0.0, 0
    for b in range(2):
        for n in range(5):
            if mask[b, n]:
                t = target[b, n]
                t = (t - t.mean()) / torch.sqrt(t.var(unbiased=True) + 1e-6)
                expected += float(((pred[b, n] - t) ** 2).mean())
                count += 1
    got = MaskedPatchMSELoss(norm_targets=True)(pred, target, mask)
    assert abs(float(got) - expected / count) < 1e-5
    raw = MaskedPatchMSELoss(norm_targets=False)(pred, target, mask)
    assert abs(float(raw) - float(((pred - target) ** 2).mean(-1)[mask].mean())) < 1e-6
