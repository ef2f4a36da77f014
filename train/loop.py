"""The training loop (paper, Algorithm 1) with progress, validation and best-checkpoint keeping.

Deterministic for a given seed and thread count.  Under ``torchrun`` (WORLD_SIZE > 1)
it runs data-parallel on the gloo backend: every rank takes its contiguous
share of each global batch, gradients are averaged by DDP and BatchNorm
statistics are synchronised (``layers.global_mean``), so the trained
weights equal a single-process run at the same global batch.
"""
from __future__ import annotations

import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..errors import BnnhwError
from .checkpoint import save_checkpoint
from .models import BNN
from .optim import ShiftAdaMax, make_loss

__all__ = ["TrainConfig", "train", "evaluate", "predict"]


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 100
    lr: float = 0.005
    lr_final: float | None = None      # exponential decay target (default lr/100)
    lr_schedule: str = "exp"           # "exp" | "step" | "const"
    lr_step_epochs: int = 40           # step schedule: halve every N epochs
    optimizer: str = "adam"            # "adam" | "shift-adamax" | "adamax"
    weight_lr_scale: str = "none"      # "none" | "glorot" (the paper's per-layer W_LR_scale)
    loss: str = "sqhinge"              # "sqhinge" | "ce"
    weight_decay: float = 0.0
    seed: int = 0
    threads: int = 1
    augment: bool = False              # random crop (pad 4) + horizontal flip
    precision: int = 32                # 64: float64 training (reproducible across process counts)
    progress: bool = True
    extra: dict = field(default_factory=dict)


def _dist():
    import torch.distributed as dist
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    if cfg.lr_schedule == "const":
        return cfg.lr
    if cfg.lr_schedule == "step":
        return cfg.lr * 0.5 ** (epoch // cfg.lr_step_epochs)
    if cfg.lr_schedule == "exp":
        final = cfg.lr_final if cfg.lr_final is not None else cfg.lr / 100
        return cfg.lr * (final / cfg.lr) ** (epoch / max(1, cfg.epochs - 1))
    raise BnnhwError(f"unknown learning-rate schedule {cfg.lr_schedule!r}",
                     "use --lr-schedule exp, step or const")


def set_lr(opt, cfg: TrainConfig, epoch: int) -> float:
    """Set every group's learning rate for ``epoch`` (the schedule times the group's
    ``lr_mult``); returns the schedule's value."""
    lr = lr_at(cfg, epoch)
    for g in opt.param_groups:
        g["lr"] = lr * g["lr_mult"]
    return lr


def glorot_lr_scale(core: torch.nn.Module) -> float:
    """The paper's per-layer learning-rate scale of binary weights (BinaryNet's
    ``W_LR_scale = "Glorot"``): ``1 / sqrt(1.5 / (fan_in + fan_out))`` with, for a
    KxK convolution, ``fan_in = C_in*K*K`` and ``fan_out = C_out*K*K``.  Latent
    weights start uniform in [-1, 1] and are clipped there, so without it a
    plain learning rate moves them (and flips their signs) far more slowly
    than the paper's recipe does."""
    w = core.weight
    receptive = int(w[0, 0].numel())
    fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
    return float(1.0 / math.sqrt(1.5 / (fan_in + fan_out)))


def param_groups(cfg: TrainConfig, model: torch.nn.Module) -> list[dict]:
    """Parameter groups with an ``lr_mult`` each (1 unless ``weight_lr_scale`` says so)."""
    from .layers import BinaryConv2d, BinaryLinear
    if cfg.weight_lr_scale == "none":
        return [{"params": list(model.parameters()), "lr_mult": 1.0}]
    if cfg.weight_lr_scale != "glorot":
        raise BnnhwError(f"unknown weight learning-rate scale {cfg.weight_lr_scale!r}",
                         "use --weight-lr-scale none or glorot")
    groups, scaled = [], set()
    for m in model.modules():
        if isinstance(m, (BinaryLinear, BinaryConv2d)):
            groups.append({"params": [m.weight], "lr_mult": glorot_lr_scale(m)})
            scaled.add(id(m.weight))
    rest = [p for p in model.parameters() if id(p) not in scaled]
    return groups + ([{"params": rest, "lr_mult": 1.0}] if rest else [])


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module):
    params = param_groups(cfg, model)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer in ("shift-adamax", "adamax"):
        return ShiftAdaMax(params, lr=cfg.lr, shift=cfg.optimizer == "shift-adamax")
    raise BnnhwError(f"unknown optimizer {cfg.optimizer!r}",
                     "use --optimizer adam, adamax or shift-adamax")


def _augment(xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop with 4 pixels of edge padding and random horizontal flips (uint8 NCHW)."""
    n, _, h, w = xb.shape
    padded = torch.nn.functional.pad(xb.float(), (4, 4, 4, 4), mode="replicate").to(xb.dtype)
    dy = torch.randint(0, 9, (n,), generator=gen)
    dx = torch.randint(0, 9, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(xb)
    for i in range(n):
        img = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = img.flip(-1) if flip[i] else img
    return out


@torch.no_grad()
def predict(model: BNN, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Class predictions of the torch model (eval mode) for raw uint8 NCHW images."""
    was = model.training
    model.eval()
    out = []
    for s in range(0, len(x), batch_size):
        out.append(model(torch.from_numpy(np.asarray(x[s:s + batch_size]))).argmax(1).numpy())
    model.train(was)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def evaluate(model: BNN, x: np.ndarray, y: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    return float((predict(model, x) == np.asarray(y)).mean())


def _progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5)


def train(spec: dict, data: dict, cfg: TrainConfig, *, output: str, dataset_info: dict,
          split_info: dict, log=print) -> dict:
    """Train ``BNN(spec)``; ``data`` has x_train, y_train, x_val, y_val (uint8 NCHW, int64).

    Writes the best checkpoint (by validation accuracy; the last epoch when
    there is no validation split) to ``output`` and returns the training summary."""
    dist, rank, world = _dist()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if cfg.precision == 64 else torch.float32)
    try:
        return _train(spec, data, cfg, output=output, dataset_info=dataset_info,
                      split_info=split_info, log=log, rank=rank, world=world)
    finally:
        torch.set_default_dtype(old_dtype)


def _train(spec, data, cfg, *, output, dataset_info, split_info, log, rank, world):
    model = BNN(spec)
    net = model
    if world > 1:
        if cfg.batch_size < world:
            raise BnnhwError(f"batch size {cfg.batch_size} is smaller than the {world} "
                             "processes", f"use --batch-size of at least {world}")
        net = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    opt = make_optimizer(cfg, net)
    loss_fn = make_loss(cfg.loss)
    x_tr = torch.from_numpy(np.ascontiguousarray(data["x_train"]))
    y_tr = torch.from_numpy(np.asarray(data["y_train"], dtype=np.int64))
    n = len(y_tr)
    if n == 0:
        raise BnnhwError("the training split is empty", "use a larger dataset or smaller holdout")
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    steps = math.ceil(n / cfg.batch_size)
    history, best, best_epoch = [], -1.0, -1
    has_val = len(data["y_val"]) > 0
    show = cfg.progress and rank == 0
    t0 = time.time()
    for epoch in range(cfg.epochs):
        lr = set_lr(opt, cfg, epoch)
        net.train()
        perm = torch.from_numpy(rng.permutation(n))
        tot_loss, t_ep = 0.0, time.time()
        for s in _progress(range(steps), steps, f"epoch {epoch + 1}/{cfg.epochs}", show):
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            scale = 1.0
            if world > 1 and len(idx) < world:
                continue  # a last partial batch smaller than the process count is skipped
            if world > 1:
                # rank r takes its contiguous share; weighting each rank's mean loss by its
                # share makes DDP's gradient average equal the global-batch mean exactly
                shares = np.array_split(np.arange(len(idx)), world)
                scale = len(shares[rank]) * world / len(idx)
                idx = idx[shares[rank]]
            xb, yb = x_tr[idx], y_tr[idx]
            if cfg.augment:
                xb = _augment(xb, gen)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xb), yb)
            (loss * scale).backward()
            opt.step()
            model.clip_weights_()
            tot_loss += float(loss.detach())
        val = evaluate(model, data["x_val"], data["y_val"]) if has_val else float("nan")
        rec = {"epoch": epoch + 1, "lr": lr, "loss": tot_loss / steps,
               "val_accuracy": None if math.isnan(val) else val,
               "seconds": round(time.time() - t_ep, 2)}
        history.append(rec)
        improved = (val > best) if has_val else True
        if improved:
            best, best_epoch = (val if has_val else best), epoch + 1
        if rank == 0:
            if improved:
                meta = {"epoch": epoch + 1, "best_val_accuracy": None if not has_val else best,
                        "history": list(history), "config": asdict(cfg),
                        "torch": str(torch.__version__), "python": platform.python_version(),
                        "world_size": world, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime())}
                save_checkpoint(output, spec=spec, model=model, dataset=dataset_info,
                                split=split_info, meta=meta)
            va = "-" if not has_val else f"{val:.4f}"
            log(f"epoch {epoch + 1:3d}/{cfg.epochs}  lr {lr:.2e}  loss {rec['loss']:.4f}  "
                f"val_acc {va}  {rec['seconds']:.1f}s" + ("  *saved" if improved else ""))
    return {"epochs": cfg.epochs, "best_epoch": best_epoch,
            "best_val_accuracy": None if not has_val else best,
            "seconds": round(time.time() - t0, 2), "output": output, "history": history,
            "rank": rank, "world_size": world, "model": model}
