"""Recovery by knowledge distillation from the original model, on the user's unlabeled samples.

Stage 1, layer-wise: each compressed layer is trained alone to reproduce the original layer's
output on the recorded inputs (squared error), one executor task per layer, so layers train in
parallel.  Stage 2, end to end: the whole compressed model is trained to reproduce the original
model's outputs (1 - cosine for embeddings, squared error otherwise) on the training samples.
Masks stay fixed (pruned weights stay zero), the fake quantizers pass gradients straight through.
Runs on a CUDA device when one is present, else on the CPU; every stage stops at its deadline.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn


def layerwise_task(module: nn.Module, weight: np.ndarray, bias: np.ndarray | None, calib: np.ndarray,
                   steps: int, seed: int, deadline: float, device: str = "cpu") -> dict:
    """Train one compressed layer toward the original layer's outputs; returns its state dict
    (on the CPU)."""
    torch.manual_seed(seed)
    module.to(device)
    x = torch.from_numpy(calib).to(device)
    with torch.no_grad():
        target = x @ torch.from_numpy(weight).to(device).T
        if bias is not None:
            target = target + torch.from_numpy(bias).to(device)
    scale = float(target.pow(2).mean()) or 1.0
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    for _ in range(steps):
        if time.time() > deadline:
            break
        opt.zero_grad()
        loss = (module(x) - target).pow(2).mean() / scale
        loss.backward()
        opt.step()
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def training_device() -> torch.device:
    """Where distillation trains: the CUDA device when one is present."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def end_to_end_settings(kind: str) -> dict:
    """Batch, learning rate and decay of the end-to-end stage for a target kind ("text" or
    "tensor"): on a CUDA device larger batches at a higher rate decaying to the deadline (what
    recovered MiniLM's compressions on an H200, bench/minilm_distill.py); on the CPU small batches
    at a constant rate, so that a short budget still takes many steps."""
    if training_device().type == "cuda":
        return {"batch": 64, "lr": 2e-4 if kind == "text" else 2e-3, "decay": True}
    return {"batch": 16, "lr": 1e-4 if kind == "text" else 1e-3, "decay": False}


def layerwise(student: nn.Module, layers, executor, steps: int, seed: int, deadline: float,
              progress=None) -> None:
    """Stage 1 over every compressed layer of ``student`` (in place): on the CPU one executor task
    per layer; with a CUDA device the layers train one after another on it (a GPU does one layer's
    few hundred steps in well under a second, and forked workers cannot share its context)."""
    modules = dict(student.named_modules())
    device = training_device()
    tasks = [(modules[layer.name], layer.weight, layer.bias, layer.calib, steps, seed + i, deadline_wall(deadline))
             for i, layer in enumerate(layers)]
    if device.type == "cuda":
        states = []
        for i, task in enumerate(tasks):
            states.append(layerwise_task(*task, device=str(device)))
            if progress:
                progress(i + 1, len(tasks))
    else:
        states = executor.map(layerwise_task, tasks, deadline=deadline + 5, progress=progress)
    for layer, state in zip(layers, states):
        if state is not None:
            modules[layer.name].load_state_dict(state)


def deadline_wall(deadline_monotonic: float) -> float:
    """A monotonic deadline as wall-clock time (tasks in other processes compare against time.time)."""
    return time.time() + (deadline_monotonic - time.monotonic())


def end_to_end(target, student: nn.Module, samples: object, teacher_out: torch.Tensor, seed: int,
               deadline: float, max_steps: int, batch: int = 16, lr: float = 1e-4, progress=None,
               decay: bool = False) -> int:
    """Stage 2: train ``student`` on the whole model's outputs until the deadline; returns the steps
    taken.  ``decay``: the learning rate falls linearly with the time left, to 5% at the deadline
    (for runs long enough to overfit a small text set at a constant rate)."""
    device = training_device()
    student.to(device).eval()   # dropout off: the teacher's outputs are deterministic too
    teacher_out = teacher_out.to(device)
    generator = np.random.default_rng(seed)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    steps = 0
    n = len(samples)
    embedding = target.kind == "text"
    begin = time.monotonic()
    while steps < max_steps and time.monotonic() < deadline:
        if decay:
            left = (deadline - time.monotonic()) / max(deadline - begin, 1e-9)
            for group in opt.param_groups:
                group["lr"] = lr * max(0.05, left)
        index = generator.choice(n, min(batch, n), replace=False)
        chunk = target.subset_of(samples, index)
        opt.zero_grad()
        out = target.run(student, chunk, batch=len(index))
        want = teacher_out[torch.as_tensor(index, device=device)]
        if embedding:
            loss = 1 - nn.functional.cosine_similarity(out, want, dim=-1).mean()
        else:
            loss = (out - want).pow(2).mean() / want.pow(2).mean().clamp(min=1e-12)
        loss.backward()
        opt.step()
        steps += 1
        if progress:
            progress(steps, max_steps)
    student.to("cpu").eval()
    return steps
