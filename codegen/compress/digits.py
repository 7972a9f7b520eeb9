"""A small MLP trained on scikit-learn's digits (8x8 images, 10 classes): the quick example and
test model of `einhls compress`.  Deterministic for a seed; trains in about a second on a CPU."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def digits_data() -> tuple[np.ndarray, np.ndarray]:
    """(images [1797, 64] scaled to [0, 1], labels)."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)


def train_digits_mlp(hidden: int = 64, seed: int = 0, epochs: int = 60) -> tuple[nn.Sequential, np.ndarray, float]:
    """(trained MLP 64 -> hidden -> hidden -> 10, its samples, test accuracy on the last 20%)."""
    torch.manual_seed(seed)
    x, y = digits_data()
    split = int(len(x) * 0.8)
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                          nn.Linear(hidden, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x[:split]), torch.from_numpy(y[:split])
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in torch.randperm(split, generator=generator).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[index]), yt[index]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        test_acc = float((model(torch.from_numpy(x[split:])).argmax(1).numpy() == y[split:]).mean())
    return model, x, test_acc
