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
from .checkpoint import load_state, save_checkpoint, save_state, state_path_for
from .models import BNN
from .optim import ShiftAdaMax, make_loss

__all__ = ["TrainConfig", "train", "evaluate", "predict", "resolve_device", "resolve_amp",
           "lr_at"]


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 100
    lr: float = 0.005
    lr_final: float | None = None      # exp: decay target (default lr/100); cosine: floor (default 0)
    lr_schedule: str = "exp"           # "exp" | "step" | "const" | "cosine"
    lr_step_epochs: int = 40           # step schedule: halve every N epochs
    warmup_epochs: int = 0             # linear warm-up before the schedule (cosine, exp)
    optimizer: str = "adam"            # "adam" | "shift-adamax" | "adamax"
    weight_lr_scale: str = "none"      # "none" | "glorot" (the paper's per-layer W_LR_scale)
    loss: str = "sqhinge"              # "sqhinge" | "ce"
    weight_decay: float = 0.0
    seed: int = 0
    threads: int = 1
    augment: bool = False              # random crop (pad 4) + horizontal flip
    precision: int = 32                # 64: float64 training (reproducible across process counts)
    device: str = "cpu"                # "cpu" | "cuda" | "cuda:N" (resolved; see resolve_device)
    amp: str = "off"                   # "off" | "bf16" | "fp16" (resolved; see resolve_amp)
    channels_last: bool | None = None  # None: on for conv nets
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
    """The schedule's learning rate for 0-based ``epoch`` (constant within an epoch).

    ``warmup_epochs`` W > 0 ramps linearly, ``lr * (epoch + 1) / W``, before the
    schedule, which then runs over the remaining ``epochs - W`` epochs."""
    w = max(0, int(cfg.warmup_epochs))
    if epoch < w:
        return cfg.lr * (epoch + 1) / w
    e, span = epoch - w, max(1, cfg.epochs - w)
    if cfg.lr_schedule == "const":
        return cfg.lr
    if cfg.lr_schedule == "step":
        return cfg.lr * 0.5 ** (e // cfg.lr_step_epochs)
    if cfg.lr_schedule == "exp":
        final = cfg.lr_final if cfg.lr_final is not None else cfg.lr / 100
        return cfg.lr * (final / cfg.lr) ** (e / max(1, span - 1))
    if cfg.lr_schedule == "cosine":
        final = cfg.lr_final if cfg.lr_final is not None else 0.0
        return final + (cfg.lr - final) * 0.5 * (1 + math.cos(math.pi * e / span))
    raise BnnhwError(f"unknown learning-rate schedule {cfg.lr_schedule!r}",
                     "use --lr-schedule exp, cosine, step or const")


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
    """Random crop with 4 pixels of edge padding and random horizontal flips (NCHW, any dtype).

    Vectorised (one gather, on ``xb``'s device); draws ``dy``, ``dx`` (0..8) and the
    flip (p = 0.5) per image from ``gen`` in that order."""
    n, c, h, w = xb.shape
    dev = xb.device
    padded = torch.nn.functional.pad(xb.float(), (4, 4, 4, 4), mode="replicate").to(xb.dtype)
    dy = torch.randint(0, 9, (n,), generator=gen, device=gen.device).to(dev)
    dx = torch.randint(0, 9, (n,), generator=gen, device=gen.device).to(dev)
    flip = (torch.rand(n, generator=gen, device=gen.device) < 0.5).to(dev)
    rows = dy[:, None] + torch.arange(h, device=dev)                       # (n, h)
    cols = torch.arange(w, device=dev).expand(n, w)
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - cols, cols)   # (n, w)
    i = torch.arange(n, device=dev)[:, None, None, None]
    ch = torch.arange(c, device=dev)[None, :, None, None]
    return padded[i, ch, rows[:, None, :, None], cols[:, None, None, :]]


def resolve_device(name: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a CUDA device is usable, else ``cpu``; ``cuda`` without a
    usable device is an error that names the fix."""
    name = (name or "auto").lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BnnhwError(f"--device {name}: this torch ({torch.__version__}) sees no CUDA "
                             "device", "use --device cpu (or auto), or install a CUDA build of "
                             "torch on a machine with a GPU")
        return name
    if name == "cpu":
        return "cpu"
    raise BnnhwError(f"unknown device {name!r}", "use --device auto, cpu or cuda")


def cpu_has_bf16() -> bool:
    """True where the CPU has bf16 arithmetic units (AVX512-BF16 or AMX-BF16): only there
    is bf16 autocast faster than float32."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        f = getattr(torch.cpu, probe, None)
        try:
            if f is not None and f():
                return True
        except Exception:  # noqa: BLE001 - a private probe that may change
            pass
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


def resolve_amp(amp: str, device: str, precision: int = 32) -> str:
    """Mixed precision actually used: ``off``, ``bf16`` or ``fp16``.

    ``auto``: bf16 on CUDA devices that support it (else fp16), bf16 on CPUs with bf16
    units, otherwise off; always off for float64 training."""
    amp = (amp or "auto").lower()
    if amp not in ("auto", "off", "bf16", "fp16"):
        raise BnnhwError(f"unknown mixed-precision mode {amp!r}", "use --amp auto, off, bf16 or fp16")
    cuda = device.startswith("cuda")
    if precision == 64:
        if amp in ("bf16", "fp16"):
            raise BnnhwError(f"--amp {amp} with --precision 64", "use --amp off with --precision 64")
        return "off"
    if amp == "auto":
        if cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_bf16() else "off"
    if amp == "fp16" and not cuda:
        raise BnnhwError("--amp fp16 needs a CUDA device (CPU autocast supports bf16)",
                         "use --amp bf16 or auto on a CPU")
    return amp


_AMP_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _has_conv(model) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def _uses_channels_last(model) -> bool:
    return any(m.weight.is_contiguous(memory_format=torch.channels_last)
               and not m.weight.is_contiguous()
               for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def _to_device(x, device, channels_last):
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@torch.no_grad()
def predict(model: BNN, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Class predictions of the torch model (eval mode, float32/64, no autocast) for raw
    uint8 NCHW images, on the device the model's parameters are on."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    cl = _uses_channels_last(model)
    out = []
    for s in range(0, len(x), batch_size):
        xb = _to_device(torch.from_numpy(np.asarray(x[s:s + batch_size])), dev, cl)
        out.append(model(xb).argmax(1).cpu().numpy())
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
          split_info: dict, log=print, resume: dict | None = None, state_path: str | None = None,
          meta_extra: dict | None = None, on_epoch_end=None) -> dict:
    """Train ``BNN(spec)``; ``data`` has x_train, y_train, x_val, y_val (uint8 NCHW, int64).

    Writes the best checkpoint (by validation accuracy; the last epoch when
    there is no validation split) to ``output`` and, after every completed epoch,
    the resumable state (model, optimizer, schedule position, every RNG,
    best-so-far) atomically to ``state_path`` (default :func:`state_path_for`).
    ``resume`` is such a state (:func:`load_state`): training continues after its
    last completed epoch and reaches the weights an uninterrupted run would.
    Returns the training summary."""
    dist, rank, world = _dist()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if cfg.precision == 64 else torch.float32)
    try:
        return _train(spec, data, cfg, output=output, dataset_info=dataset_info,
                      split_info=split_info, log=log, rank=rank, world=world, resume=resume,
                      state_path=state_path or state_path_for(output),
                      meta_extra=meta_extra or {}, on_epoch_end=on_epoch_end)
    finally:
        torch.set_default_dtype(old_dtype)


def _train(spec, data, cfg, *, output, dataset_info, split_info, log, rank, world, resume,
           state_path, meta_extra, on_epoch_end):
    device = torch.device(cfg.device)
    model = BNN(spec).to(device)
    channels_last = _has_conv(model) if cfg.channels_last is None else bool(cfg.channels_last)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    amp_dtype = _AMP_DTYPE.get(cfg.amp)
    net = model
    if world > 1:
        if cfg.batch_size < world:
            raise BnnhwError(f"batch size {cfg.batch_size} is smaller than the {world} "
                             "processes", f"use --batch-size of at least {world}")
        net = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    opt = make_optimizer(cfg, net)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    loss_fn = make_loss(cfg.loss)
    x_tr = torch.from_numpy(np.ascontiguousarray(data["x_train"])).to(device)
    y_tr = torch.from_numpy(np.asarray(data["y_train"], dtype=np.int64)).to(device)
    n = len(y_tr)
    if n == 0:
        raise BnnhwError("the training split is empty", "use a larger dataset or smaller holdout")
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    steps = math.ceil(n / cfg.batch_size)
    history, best, best_epoch, first = [], -1.0, -1, 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        if resume.get("scaler"):
            scaler.load_state_dict(resume["scaler"])
        rng.bit_generator.state = resume["rng"]["numpy"]
        if resume["rng"].get("augment_device", "cpu") == device.type:
            gen.set_state(resume["rng"]["augment"])
        else:  # generator states do not carry across device types: reseed, reproducibly
            gen.manual_seed(cfg.seed + 1 + 1000003 * int(resume["epoch"]))
            log(f"note: the run moved from {resume['rng'].get('augment_device', 'cpu')} to "
                f"{device.type}; augmentation draws are reseeded (the run stays reproducible, "
                "but differs from one that never moved)")
        torch.set_rng_state(resume["rng"]["torch"])
        if device.type == "cuda" and resume["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(resume["rng"]["cuda"], device)
        history = list(resume["history"])
        best, best_epoch, first = resume["best"], resume["best_epoch"], resume["epoch"]
        log(f"resuming after epoch {first} of {cfg.epochs} (best val "
            f"{'-' if best < 0 else f'{best:.4f}'} at epoch {best_epoch})")
    has_val = len(data["y_val"]) > 0
    show = cfg.progress and rank == 0
    t0 = time.time()
    for epoch in range(first, cfg.epochs):
        lr = set_lr(opt, cfg, epoch)
        net.train()
        perm = torch.from_numpy(rng.permutation(n)).to(device)
        tot_loss, t_ep = torch.zeros((), dtype=torch.float64, device=device), time.time()
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
                idx = idx[torch.from_numpy(shares[rank]).to(device)]
            xb, yb = x_tr[idx], y_tr[idx]
            if cfg.augment:
                xb = _augment(xb, gen)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16,
                                enabled=amp_dtype is not None):
                out = net(xb)
            loss = loss_fn(out.to(torch.get_default_dtype()), yb)
            scaler.scale(loss * scale).backward()
            scaler.step(opt)
            scaler.update()
            model.clip_weights_()
            tot_loss += loss.detach()
        val = evaluate(model, data["x_val"], data["y_val"]) if has_val else float("nan")
        rec = {"epoch": epoch + 1, "lr": lr, "loss": float(tot_loss) / steps,
               "val_accuracy": None if math.isnan(val) else val,
               "seconds": round(time.time() - t_ep, 2)}
        history.append(rec)
        improved = (val > best) if has_val else True
        if improved:
            best, best_epoch = (val if has_val else best), epoch + 1
        if rank == 0:
            meta = {"epoch": epoch + 1, "best_val_accuracy": None if not has_val else best,
                    "history": list(history), "config": asdict(cfg),
                    "torch": str(torch.__version__), "python": platform.python_version(),
                    "world_size": world, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime()),
                    **meta_extra}
            if improved:
                save_checkpoint(output, spec=spec, model=model, dataset=dataset_info,
                                split=split_info, meta=meta)
            rngs = {"numpy": rng.bit_generator.state, "augment": gen.get_state(),
                    "augment_device": device.type,
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
            save_state(state_path, {
                "epoch": epoch + 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict() if cfg.amp == "fp16" else {}, "rng": rngs,
                "best": best, "best_epoch": best_epoch, "history": list(history),
                "config": asdict(cfg), "output": os.path.abspath(output), "spec": spec,
                "dataset": dataset_info, "split": split_info, "meta": meta})
            va = "-" if not has_val else f"{val:.4f}"
            log(f"epoch {epoch + 1:3d}/{cfg.epochs}  lr {lr:.2e}  loss {rec['loss']:.4f}  "
                f"val_acc {va}  {rec['seconds']:.1f}s" + ("  *saved" if improved else ""))
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    return {"epochs": cfg.epochs, "best_epoch": best_epoch,
            "best_val_accuracy": None if not has_val else best,
            "seconds": round(time.time() - t0, 2), "output": output, "history": history,
            "state": state_path, "device": cfg.device, "amp": cfg.amp,
            "channels_last": channels_last, "rank": rank, "world_size": world, "model": model}
