"""The GPU check's DDP equality check, run on 2 CPU processes (gloo): the code path a 2-GPU machine
takes with NCCL, so that its first run on GPUs is not its first run at all."""

from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not available")
def test_ddp_check_on_two_cpu_processes(tmp_path: Path):
    result = gpu_check.ddp_check(tmp_path, "cpu", 32, timeout=600)
    assert result["backend"] == "gloo" and result["world_size"] == 2
    assert result["ranks_identical"], result
    assert result["max_abs_diff_vs_one_process"] <= result["tolerance"] == gpu_check.DDP_ATOL["cpu"]
    assert result["tensors_compared"] >= 10 and result["exact_enough"]
    assert "--nproc_per_node 2" in result["command_two_processes"]
