"""SimCLR with negatives gathered across 2 Ray Train workers gives the gradient of 1 worker on the full batch."""

import torch

from distributed_ssl.config import load_config
from distributed_ssl.methods.registry import build_method

OVERRIDES = ["model.encoder=vit_debug", "method.temperature=0.3", "model.patch_size=8"]


def _flat_grads(method):
    return torch.cat([p.grad.flatten() for p in method.parameters()])


def _worker(config):
    import ray.train
    import torch.distributed as dist

    torch.manual_seed(0)
    method = build_method(load_config(None, OVERRIDES))
    batch = torch.load(config["batch"], weights_only=True)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    n = batch["view_0"].shape[0] // world
    method({k: v[rank * n:(rank + 1) * n] for k, v in batch.items()})["loss"].backward()
    grads = _flat_grads(method)
    dist.all_reduce(grads)  # what DeepSpeed's data parallelism does: average over ranks
    grads /= world
    if rank == 0:
        torch.save(grads, config["out"])


def test_two_workers_equal_one_worker_on_concatenated_batch(ray_cluster, tmp_path):
    import ray.train
    from ray.train.torch import TorchTrainer

    torch.manual_seed(1)
    batch = {"view_0": torch.randn(8, 3, 32, 32), "view_1": torch.randn(8, 3, 32, 32)}
    torch.save(batch, tmp_path / "batch.pt")
    torch.manual_seed(0)
    single = build_method(load_config(None, OVERRIDES))
    single(batch)["loss"].backward()
    expected = _flat_grads(single)

    TorchTrainer(_worker, train_loop_config={"batch": str(tmp_path / "batch.pt"), "out": str(tmp_path / "g.pt")},
                 scaling_config=ray.train.ScalingConfig(num_workers=2),
                 run_config=ray.train.RunConfig(storage_path=str(tmp_path / "ray"), name="grad")).fit()
    got = torch.load(tmp_path / "g.pt", weights_only=True)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6), float((got - expected).abs().max())

