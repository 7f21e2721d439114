"""Data-parallel training under torchrun (gloo, 2 CPU processes) against one process: on one
node (``--standalone``) and on two nodes (two launchers on localhost, c10d rendezvous)."""

import json
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from pairgan import checkpoint as ckpt
from pairgan.config import build_config
from pairgan.methods.build import build_method
from tests.helpers import checkpoint_tensors, set_args, tiny_overrides, write_aligned

TINY = tiny_overrides("pix2pix")
# Each torchrun and training subprocess gets this long.
TIMEOUT_S = 600

SCRIPT = textwrap.dedent(
    """
    import os, sys
    if os.environ.get("PIDS_DIR"):  # first of all: the test kills what it started on failure
        open(os.path.join(os.environ["PIDS_DIR"], str(os.getpid())), "w").close()
    import json, torch
    from pairgan.config import build_config
    from pairgan.train.trainer import Trainer
    data, run, out = sys.argv[1], sys.argv[2], sys.argv[3]
    overrides = sys.argv[4:]
    cfg = build_config("pix2pix", overrides, data_path=data)
    tr = Trainer(cfg, run, progress=False, resume=os.environ.get("RESUME") == "1")
    summary = tr.fit(until_step=int(os.environ["UNTIL"]) if "UNTIL" in os.environ else None)
    rank = int(os.environ.get("RANK", "0"))
    torch.save({k: {n: t.detach().clone() for n, t in net.state_dict().items()}
                for k, net in tr.method.nets.items()}, os.path.join(out, f"rank{rank}.pt"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({k: os.environ.get(k) for k in ("RANK", "LOCAL_RANK", "GROUP_RANK", "WORLD_SIZE",
                                                  "LOCAL_WORLD_SIZE", "NODE")} | {"checkpoint": summary["checkpoint"]}, f)
    if torch.distributed.is_initialized():
        # as `pairgan train` does: leaving with the process group alive can abort a rank at exit
        # ("terminate called without an active exception" from gloo's threads)
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    """
)


def _torchrun() -> list[str] | None:
    exe = Path(sys.executable).with_name("torchrun")
    return [str(exe)] if exe.exists() else None


needs_torchrun = pytest.mark.skipif(not torch.distributed.is_available() or _torchrun() is None,
                                    reason="torch.distributed/torchrun not available")


def _script(tmp_path: Path) -> Path:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    return script


def _comparable(max_steps: int) -> list[str]:
    """Tiny pix2pix whose multi-process run matches one process to round-off (no dropout noise,
    deterministic kernels), accumulating 2 micro-batches per step; the batch size is the caller's."""
    return [o for o in TINY if not o.startswith("train.batch_size")] + [
        "model.norm=instance", "model.dropout=false", f"train.max_steps={max_steps}", "train.deterministic=true",
        "train.accumulate=2",
    ]


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", **extra)


def _ok(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 0, (r.stdout or "")[-2000:] + (r.stderr or "")[-3000:]


def _train_one_process(script: Path, data: Path, run: Path, out: Path, overrides: list[str], **env: str) -> Path:
    """The script in one plain process (world size 1); returns ``out`` holding ``rank0.pt``."""
    out.mkdir(exist_ok=True)
    _ok(subprocess.run([sys.executable, str(script), str(data), str(run), str(out), *overrides],
                       capture_output=True, text=True, env=_env(**env), timeout=TIMEOUT_S))
    return out


def _biases_before_instance_norm(net: torch.nn.Module) -> set[str]:
    """Conv biases that feed an InstanceNorm directly: their gradient is zero in exact arithmetic,
    so Adam (whose step is about lr whatever the gradient's size) turns float round-off into
    lr-sized random walks there. They carry no information and are left out of the comparison."""
    names = set()
    for prefix, mod in net.named_modules():
        if isinstance(mod, torch.nn.Sequential):
            kids = list(mod.named_children())
            for (n1, a), (_, b) in zip(kids, kids[1:]):
                if isinstance(a, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and a.bias is not None and isinstance(
                    b, torch.nn.InstanceNorm2d
                ):
                    names.add(f"{prefix}.{n1}.bias" if prefix else f"{n1}.bias")
    return names


def _assert_close_to_one_process(ranks: list[dict], single: dict, overrides: list[str]) -> None:
    """Every rank holds the same weights ({net: {param: tensor}}), and they equal one process's
    to 1e-5, the biases of :func:`_biases_before_instance_norm` left out."""
    nets = build_method(build_config("pix2pix", overrides), training=True).nets
    compared = 0
    for net in ("G", "D"):
        skip = _biases_before_instance_norm(nets[net])
        for k, v in ranks[0][net].items():
            for r, other in enumerate(ranks[1:], 1):
                assert torch.equal(v, other[net][k]), f"rank {r} differs from rank 0 in {net}.{k}"
            if k not in skip:
                assert torch.allclose(v, single[net][k], atol=1e-5, rtol=0), f"{net}.{k} differs from one process"
                compared += 1
    assert compared >= 10


def _as_nets(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """:func:`tests.helpers.checkpoint_tensors` (``NET.PARAM``) as {net: {param: tensor}}."""
    nets: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        net, param = key.split(".", 1)
        nets.setdefault(net, {})[param] = t
    return nets


@pytest.mark.slow
@needs_torchrun
def test_two_process_gloo_equals_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = write_aligned(tmp_path / "data", {"train": 8})
    script = _script(tmp_path)
    common = _comparable(max_steps=3)
    out2 = tmp_path / "two"
    out2.mkdir()
    # Only rank 0 logs: one MLflow run (when MLflow is installed; a file store in this test's folder).
    uri = (tmp_path / "mlruns").as_uri()
    tracked = (["train.loggers=[tensorboard,mlflow]", f"train.mlflow_tracking_uri={uri}"]
               if importlib.util.find_spec("mlflow") else [])
    cmd = _torchrun() + ["--standalone", "--nproc_per_node", "2", str(script), str(data), str(tmp_path / "run2"),
                         str(out2), *common, "train.batch_size=1", *tracked]
    _ok(subprocess.run(cmd, capture_output=True, text=True, env=_env(MLFLOW_ALLOW_FILE_STORE="true"),
                       timeout=TIMEOUT_S))
    out1 = _train_one_process(script, data, tmp_path / "run1", tmp_path / "one", common + ["train.batch_size=2"])

    _assert_close_to_one_process([torch.load(out2 / "rank0.pt"), torch.load(out2 / "rank1.pt")],
                                 torch.load(out1 / "rank0.pt"), common)
    # Only rank 0 wrote the run folder's checkpoint, and it holds rank 0's weights.
    assert (tmp_path / "run2" / "checkpoints" / "latest").exists()
    assert (tmp_path / "run2" / "train_summary.json").read_text().count('"world_size": 2') == 1
    # Every rank names the checkpoint rank 0 wrote.
    written = str(ckpt.resolve_checkpoint(tmp_path / "run2"))
    assert [json.loads((out2 / f"rank{r}.json").read_text())["checkpoint"] for r in range(2)] == [written] * 2
    if tracked:
        from mlflow.tracking import MlflowClient

        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        client = MlflowClient(tracking_uri=uri)
        runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        assert len(runs) == 1 and [m.step for m in client.get_metric_history(runs[0].info.run_id, "G_L1")] == [1, 2, 3]


@pytest.mark.slow
@needs_torchrun
def test_resume_on_a_different_number_of_processes(tmp_path: Path):
    """Stop a 2-process run mid-epoch, continue it in one process with the same global batch."""
    data = write_aligned(tmp_path / "data", {"train": 8})
    script = _script(tmp_path)
    common = [o for o in TINY if not o.startswith("train.batch_size")] + [
        "model.norm=instance", "model.dropout=false", "train.max_steps=5"]
    run = tmp_path / "run"
    (tmp_path / "o").mkdir()
    _ok(subprocess.run(_torchrun() + ["--standalone", "--nproc_per_node", "2", str(script), str(data), str(run),
                                      str(tmp_path / "o"), *common, "train.batch_size=2"],
                       capture_output=True, text=True, env=_env(UNTIL="3"), timeout=TIMEOUT_S))
    state = ckpt.load_state(ckpt.resolve_checkpoint(run))
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (3, 1, 1)
    assert state["data"]["world_size"] == 2 and state["data"]["samples_in_epoch"] == 4
    _train_one_process(script, data, run, tmp_path / "o", common + ["train.batch_size=4"], RESUME="1")
    state = ckpt.load_state(ckpt.resolve_checkpoint(run))
    assert (state["step"], state["data"]["world_size"]) == (5, 1)
    steps = [line for line in (run / "history.jsonl").read_text().splitlines()]
    assert len(steps) == 5


@pytest.mark.slow
@needs_torchrun
def test_two_process_resume_with_random_draws_on_every_rank_is_exact(tmp_path: Path):
    """Each rank draws its own noise (DiffAugment here; dropout alike): every rank's RNG state is
    saved, so 2 processes stopped mid-epoch and resumed on 2 equal an uninterrupted run bit for bit."""
    data = write_aligned(tmp_path / "data", {"train": 8})
    script = _script(tmp_path)
    common = _comparable(max_steps=4) + ["train.batch_size=1", "model.d_augment=diffaug"]
    two = _torchrun() + ["--standalone", "--nproc_per_node", "2", str(script), str(data)]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir()
    parts.mkdir()
    _ok(subprocess.run(two + [str(tmp_path / "run-whole"), str(whole), *common], capture_output=True, text=True,
                       env=_env(), timeout=TIMEOUT_S))
    for env in ({"UNTIL": "2"}, {"RESUME": "1"}):
        _ok(subprocess.run(two + [str(tmp_path / "run-parts"), str(parts), *common], capture_output=True,
                           text=True, env=_env(**env), timeout=TIMEOUT_S))
    state = ckpt.load_state(ckpt.resolve_checkpoint(tmp_path / "run-parts"))
    assert state["step"] == 4 and len(state["rng_ranks"]) == 2
    for r in range(2):
        a, b = torch.load(whole / f"rank{r}.pt"), torch.load(parts / f"rank{r}.pt")
        for net in ("G", "D"):
            for k in a[net]:
                assert torch.equal(a[net][k], b[net][k]), f"rank {r}: {net}.{k}"


# --------------------------------------------------------------------------- two nodes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_started(launchers: list[subprocess.Popen], pids_dir: Path, script: Path) -> None:
    """SIGKILL the launchers still running, then the workers they started (torchrun starts each
    worker in a session of its own, so killing a launcher leaves its workers running). The workers
    are known by the pid files the script writes first thing (on Linux checked against their
    command line, in case a pid was reused)."""
    for p in launchers:
        if p.poll() is None:
            p.kill()
        p.wait()
    proc = Path("/proc")
    deadline = time.monotonic() + 3.0  # a worker forked just before its launcher died writes its pid soon
    while True:
        for f in pids_dir.iterdir():
            if proc.is_dir():
                try:
                    if str(script).encode() not in (proc / f.name / "cmdline").read_bytes():
                        continue  # gone (a zombie's command line is empty) or another process now
                except OSError:
                    continue
            try:
                os.kill(int(f.name), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)


def _torchrun_two_nodes(tmp_path: Path, script: Path, node_args: list[list[str]], env: dict[str, str]) -> list[str]:
    """Two torchrun launchers on localhost as two nodes of one job (``--nnodes 2``, one worker
    each, c10d rendezvous); node ``n`` runs ``script`` with ``node_args[n]`` and ``NODE=n`` in its
    environment. Returns each launcher's output; on a failure or after :data:`TIMEOUT_S` both
    launchers and their workers are killed."""
    port = _free_port()
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    launchers: list[subprocess.Popen] = []
    logs = [tmp_path / f"node{n}.log" for n in range(2)]
    ok = False
    try:
        for n, args in enumerate(node_args):
            cmd = _torchrun() + ["--nnodes=2", "--nproc_per_node=1", f"--node_rank={n}", "--rdzv_backend=c10d",
                                 f"--rdzv_endpoint=127.0.0.1:{port}", f"--rdzv_id=pairgan-test-{os.getpid()}",
                                 "--rdzv_conf=join_timeout=120", "--max_restarts=0", str(script), *args]
            with open(logs[n], "w") as log:
                launchers.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                  env=dict(env, NODE=str(n), PIDS_DIR=str(pids_dir))))
        deadline = time.monotonic() + TIMEOUT_S
        # until both are done, one failed (its peer may wait in a collective) or the time is up
        while any(p.poll() is None for p in launchers) and time.monotonic() < deadline:
            if any(p.returncode not in (None, 0) for p in launchers):
                break
            time.sleep(0.2)
        ok = all(p.returncode == 0 for p in launchers)
    finally:
        if not ok:
            _kill_started(launchers, pids_dir, script)
    outputs = [log.read_text() for log in logs]
    assert ok, f"a launcher failed, or both ran past {TIMEOUT_S} s (exit -9: killed here):\n" + "\n".join(
        f"node {n} (exit {p.returncode}):\n{o[-3000:]}" for n, (p, o) in enumerate(zip(launchers, outputs)))
    return outputs


@pytest.mark.slow
@needs_torchrun
def test_two_nodes_equal_one_process_then_resume_on_one_node(tmp_path: Path):
    """Two torchrun launchers as two nodes (one gloo worker each) stop at step 3 of 5: their weights
    equal one process's over the same global batch; then `pairgan train --resume` continues the
    run on one node in one process, with the same global batch, and ends where one process does.

    Each node gets a run folder of its own (node-local disks): only global rank 0 writes one.
    With c10d the rendezvous, not ``--node_rank``, decides which launcher's worker is rank 0."""
    data = write_aligned(tmp_path / "data", {"train": 8})
    script = _script(tmp_path)
    common = _comparable(max_steps=5)
    runs = [tmp_path / f"run-node{n}" for n in range(2)]
    out2 = tmp_path / "two"
    out2.mkdir()
    _torchrun_two_nodes(tmp_path, script, [[str(data), str(run), str(out2), *common, "train.batch_size=1"]
                                           for run in runs], _env(UNTIL="3"))

    ranks = [json.loads((out2 / f"rank{r}.json").read_text()) for r in range(2)]
    assert sorted(r["NODE"] for r in ranks) == ["0", "1"]  # one worker on each node
    assert all((r["WORLD_SIZE"], r["LOCAL_RANK"], r["LOCAL_WORLD_SIZE"]) == ("2", "0", "1") for r in ranks)
    assert all(r["GROUP_RANK"] == r["RANK"] for r in ranks)
    main_run = runs[int(ranks[0]["NODE"])]
    assert not runs[int(ranks[1]["NODE"])].exists(), "global rank 1 wrote into its node's run folder"
    state = ckpt.load_state(ckpt.resolve_checkpoint(main_run))
    # 3 steps of 2 micro-batches of 2 (1 per node): 12 samples, 4 batches per epoch of 8
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (3, 1, 2)
    assert state["data"]["world_size"] == 2 and state["data"]["global_batch"] == 2

    one = tmp_path / "run-one"
    out1 = _train_one_process(script, data, one, tmp_path / "one", common + ["train.batch_size=2"], UNTIL="3")
    _assert_close_to_one_process([torch.load(out2 / "rank0.pt"), torch.load(out2 / "rank1.pt")],
                                 torch.load(out1 / "rank0.pt"), common)

    # Resume both on one node in one process with `pairgan train --resume`: the checkpoint's config
    # says train.batch_size=1 (per process) for the 2-node run, so batch 2 keeps the global batch.
    for run in (main_run, one):
        _ok(subprocess.run([sys.executable, "-m", "pairgan", "train", "--resume", str(run),
                            *set_args(["train.batch_size=2"])],
                           capture_output=True, text=True, env=_env(), timeout=TIMEOUT_S))
    state = ckpt.load_state(ckpt.resolve_checkpoint(main_run))
    assert (state["step"], state["data"]["world_size"], state["data"]["global_batch"]) == (5, 1, 2)
    history = [json.loads(line)["step"] for line in (main_run / "history.jsonl").read_text().splitlines()]
    assert history == [1, 2, 3, 4, 5]
    _assert_close_to_one_process([_as_nets(checkpoint_tensors(main_run))], _as_nets(checkpoint_tensors(one)), common)
