"""The lr schedule of ml.train: torch schedulers giving the values of the hand-rolled warm-up they replaced."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ml.train import TrainConfig, _scheduled_lr, make_optimizer, make_warmup

STEPS_PER_EPOCH = 4


def _old_lrs(config: TrainConfig, epochs: int, warm: int) -> list[float]:
    """The lr each step ran at before: the epoch's lr (adam: lr x decay**epoch; sgd: x0.1 per passed
    milestone at 80% / 95% of the epochs), times (step + 1) / warm during the first ``warm`` steps."""
    milestones = sorted({max(1, int(round(config.epochs * 0.8))), max(1, int(round(config.epochs * 0.95)))})
    out, step = [], 0
    for epoch in range(epochs):
        if config.optimizer == "adam":
            scheduled = config.lr * config.lr_decay**epoch
        else:
            scheduled = config.lr * 0.1 ** sum(1 for m in milestones if epoch >= m)
        for _ in range(STEPS_PER_EPOCH):
            out.append(scheduled * (step + 1) / warm if step < warm else scheduled)
            step += 1
    return out


def _new_lrs(config: TrainConfig, epochs: int, warm: int) -> tuple[list[float], list[float]]:
    """Drive the schedulers as train_one_epoch / _end_epoch do; the lr of every step and each epoch's
    recorded (warm-up-free) lr."""
    model = torch.nn.Linear(2, 1)
    optimizer, scheduler = make_optimizer(model, config)
    warmup = make_warmup(optimizer, warm)
    used, recorded = [], []
    for _ in range(epochs):
        for _ in range(STEPS_PER_EPOCH):
            used.append(optimizer.param_groups[0]["lr"])
            model(torch.ones(1, 2)).sum().backward()
            optimizer.step()
            if warmup is not None:
                warmup.step()
        scheduler.step()
        recorded.append(_scheduled_lr(SimpleNamespace(optimizer=optimizer, warmup=warmup)))
    return used, recorded


@pytest.mark.parametrize(
    "optimizer, lr, warmup_epochs",
    [("adam", 0.005, 1.0), ("adam", 0.005, 1.5), ("sgd", 0.01, 2.25), ("sgd", 0.01, 0.0)],
)
def test_lr_per_step_matches_the_old_warm_up(optimizer, lr, warmup_epochs):
    config = TrainConfig(
        csv="c", images_dir="i", out_dir="o", optimizer=optimizer, lr=lr, epochs=5, lr_warmup_epochs=warmup_epochs
    )
    warm = int(round(warmup_epochs * STEPS_PER_EPOCH))
    used, recorded = _new_lrs(config, 5, warm)
    old = _old_lrs(config, 5, warm)
    assert used == pytest.approx(old, rel=1e-12, abs=0)
    assert used[0] == pytest.approx(lr / warm if warm else lr, rel=1e-15)
    # history's "lr": the scheduled lr of the next epoch, without the warm-up factor
    assert recorded == pytest.approx(_old_lrs(config, 6, 0)[STEPS_PER_EPOCH::STEPS_PER_EPOCH], rel=1e-12)


def test_warm_up_state_resumes_where_it_stopped():
    config = TrainConfig(csv="c", images_dir="i", out_dir="o", epochs=4, lr_warmup_epochs=2.0)
    runs = []
    for split in (None, 3):
        model = torch.nn.Linear(2, 1)
        optimizer, scheduler = make_optimizer(model, config)
        warmup = make_warmup(optimizer, 8)
        lrs = []
        for step in range(8):
            if step == split:  # a new process: fresh objects, then the checkpointed states
                saved = (optimizer.state_dict(), scheduler.state_dict(), warmup.state_dict())
                optimizer, scheduler = make_optimizer(model, config)
                warmup = make_warmup(optimizer, 8)
                optimizer.load_state_dict(saved[0])
                scheduler.load_state_dict(saved[1])
                warmup.load_state_dict(saved[2])
            lrs.append(optimizer.param_groups[0]["lr"])
            model(torch.ones(1, 2)).sum().backward()
            optimizer.step()
            warmup.step()
        runs.append(lrs)
    assert runs[0] == runs[1]
    assert runs[0][:2] == [0.005 / 8, 0.005 * 2 / 8]
