"""One loss per file, each a plain nn.Module."""

from distributed_ssl.losses.chamfer_loss import MaskedChamferLoss
from distributed_ssl.losses.info_nce_loss import InfoNCELoss
from distributed_ssl.losses.masked_patch_mse_loss import MaskedPatchMSELoss

__all__ = ["InfoNCELoss", "MaskedChamferLoss", "MaskedPatchMSELoss"]
