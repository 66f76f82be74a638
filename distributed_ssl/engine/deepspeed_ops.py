"""Which of DeepSpeed's compiled ops a training run loads.

On the CPU, DeepSpeed's communication backend JIT-compiles `deepspeed_shm_comm` (a shared-memory all-reduce)
when it starts: about 90 s with a C++ compiler the first time, and again whenever its build command comes out
different (a test machine's cache held 11 builds of it from four distinct command lines).
That op serves only `inference_all_reduce` (tensor-parallel inference); training's collectives go through
torch.distributed (gloo on the CPU, NCCL on GPUs), so the op is marked unavailable before DeepSpeed starts.
"""

from __future__ import annotations

INFERENCE_ONLY_OPS = ("deepspeed_shm_comm",)


def skip_inference_only_ops() -> None:
    """Mark the inference-only ops as not compatible, so `deepspeed.initialize` neither builds nor loads them."""
    import deepspeed.ops

    compatible = deepspeed.ops.__compatible_ops__  # probed once per process; edits persist
    for name in INFERENCE_ONLY_OPS:
        if name in compatible:
            compatible[name] = False
