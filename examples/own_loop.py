"""Use topo in your own training script: a small CNN on MNIST, sparse with RigL, watched.

The loop below is a plain PyTorch loop. Three lines bring topo in:

- ``topo.sparsify(model, optimizer, method="rigl", density=0.1, ...)`` masks the CNN's
  inner layers (the first and last stay dense, as RigL does) at 10% density with ERK,
  and drops and grows connections on RigL's schedule inside ``optimizer.step()``;
- ``topo.TopologyMonitor`` measures fan-in CV, turnover, NNSTD to the start and hub
  overlap every ``--monitor-every`` steps;
- ``sparse.save_checkpoint(RUN, metrics=...)`` writes topo's own checkpoints into a run
  folder after every epoch,

and at the end ``topo report RUN`` writes the HTML report of the run.

Usage::

    python examples/own_loop.py [--out runs/own_loop] [--epochs 3] [--dataset mnist] [--limit N]

MNIST is read from ``$TOPO_DATA_DIR`` (topo's data loaders; ``topo data`` says where
they look). ``--dataset digits`` (8x8 images bundled with scikit-learn) needs no files.
With the defaults it runs in a few minutes on a CPU.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import topo
from topo.training.data import load_dataset


class SmallCNN(nn.Module):
    """conv(1->16) - pool - conv(16->32) - pool - conv(32->32) - fc(->128) - fc(->classes)."""

    def __init__(self, side: int, n_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * (side // 4) ** 2, 128)
        self.fc2 = nn.Linear(128, n_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def images(X, side: int):
    return torch.as_tensor(X, dtype=torch.float32).reshape(-1, 1, side, side)


@torch.no_grad()
def evaluate(model, X, y) -> tuple[float, float]:
    model.eval()
    logits = torch.cat([model(X[i:i + 1000]) for i in range(0, len(X), 1000)])
    model.train()
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/own_loop", help="run folder to write (made fresh)")
    parser.add_argument("--dataset", default="mnist", help="mnist (from $TOPO_DATA_DIR), fashion-mnist or digits")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--update-every", type=int, default=100, help="RigL's steps between mask updates")
    parser.add_argument("--monitor-every", type=int, default=100, help="steps between monitor updates")
    parser.add_argument("--no-report", action="store_true", help="skip `topo report` at the end")
    args = parser.parse_args(argv)

    run = Path(args.out)
    if run.exists():
        if not (run / "run.json").is_file():
            print(f"own_loop: {run} exists and is not a topo run; choose another --out", file=sys.stderr)
            return 1
        shutil.rmtree(run)

    torch.manual_seed(0)
    data = load_dataset(args.dataset, val_fraction=0.1, seed=0)
    side = math.isqrt(data.n_features)
    X, y = images(data.X_train, side), torch.as_tensor(data.y_train)
    if args.limit:
        X, y = X[:args.limit], y[:args.limit]
    X_val, y_val = images(data.X_val, side), torch.as_tensor(data.y_val)
    X_test, y_test = images(data.X_test, side), torch.as_tensor(data.y_test)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X, y), batch_size=args.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )

    model = SmallCNN(side, data.n_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    # topo: RigL at 10% density (ERK across layers) inside optimizer.step()
    sparse = topo.sparsify(model, optimizer, method="rigl", density=0.1, epochs=args.epochs,
                           steps_per_epoch=len(loader), update_every=args.update_every, seed=0)
    # topo: the sparse layers' topology while training
    monitor = topo.TopologyMonitor(layers="^(" + "|".join(sparse.names) + ")$")
    monitor.update(model, step=0)
    sparse.save_checkpoint(run, run_info={"dataset": data.name})
    print(f"own_loop: {data.name}, {len(y)} training images, sparse layers {', '.join(sparse.names)} "
          f"at densities {', '.join(f'{d:.3f}' for d in sparse.densities())}")

    for epoch in range(1, args.epochs + 1):
        total, correct = 0.0, 0
        first_update = len(monitor.history)
        for xb, yb in loader:
            optimizer.zero_grad()
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
            if sparse.step % args.monitor_every == 0:
                monitor.update(model, step=sparse.step)
        val_loss, val_acc = evaluate(model, X_val, y_val)
        test_loss, test_acc = evaluate(model, X_test, y_test)
        metrics = {"train_loss": total / len(y), "train_acc": correct / len(y), "val_loss": val_loss,
                   "val_acc": val_acc, "test_loss": test_loss, "test_acc": test_acc}
        sparse.save_checkpoint(run, metrics=metrics)
        monitor.update(model, step=sparse.step)
        watched = monitor.compute()
        layer = sparse.names[-1]
        # turnover is measured between consecutive monitor updates: the epoch's largest
        moved = max((h.get(f"{layer}/turnover", 0.0) for h in monitor.history[first_update:]), default=0.0)
        print(f"epoch {epoch}: train loss {metrics['train_loss']:.3f}, val acc {val_acc:.3f}, "
              f"mask updates {sparse.mask_updates}, {layer}: fan-in CV {watched[f'{layer}/fan_in_cv']:.3f}, "
              f"largest turnover between monitor updates {moved:.3f}, NNSTD to start {watched.get('nnstd', 0.0):.3f}")
    assert sparse.nnz() == sparse.budgets, "every layer keeps exactly its number of connections"

    if not args.no_report:
        report = run / "report.html"
        command = [sys.executable, "-m", "topo_cli.main", "report", str(run), "-o", str(report)]
        print(f"$ topo report {run} -o {report}", flush=True)
        completed = subprocess.run(command)
        if completed.returncode != 0:
            return completed.returncode
        print(f"own_loop: open {report.resolve()} in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
