"""Training checkpoints: safe to load, self-describing.

A checkpoint is a ``torch.save``'d dict of plain types and tensors only, so it
loads with ``torch.load(weights_only=True)`` (no code runs)::

    {"format": "bnnhw.checkpoint", "version": 1,
     "spec": {...},            # bnnhw.train.models spec (architecture + input quantisation)
     "state_dict": {...},      # tensors of BNN(spec)
     "dataset": {"name", "kind", "classes", "input_shape"},
     "split": {...},           # bnnhw.train.data split info (seeded holdout/validation)
     "meta": {"epoch", "best_val_accuracy", "history", "args", "torch", ...}}
"""
from __future__ import annotations

import os
import pickle
import struct
import warnings
import zipfile

import torch

from ..errors import ModelFileError
from .models import BNN, SpecError, validate_spec

FORMAT = "bnnhw.checkpoint"
VERSION = 1

STATE_FORMAT = "bnnhw.train-state"
STATE_VERSION = 1

__all__ = ["save_checkpoint", "load_checkpoint", "model_from_checkpoint", "is_checkpoint",
           "save_state", "load_state", "state_path_for", "find_state"]


def _first_zip_member(head: bytes) -> str | None:
    """Name of the first member from a zip local file header (works on truncated files)."""
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return None
    n = int.from_bytes(head[26:28], "little")
    return head[30:30 + n].decode("utf-8", "replace")


def is_checkpoint(path: str) -> bool:
    """True if ``path`` is (or was meant to be: truncated files count) a torch checkpoint,
    told by content: a torch zip archive (first member ``*/data.pkl`` or ``*/.format*``
    or ``*/byteorder``) or a legacy pickle stream.  An IR file (``.npz``) is not."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    first = _first_zip_member(head)
    if first is not None:
        return not first.endswith(".npy") and "/" in first
    return head[:1] == b"\x80"  # a bare pickle stream (legacy torch.save)


def _atomic_torch_save(obj, path: str) -> None:
    """``torch.save`` through :func:`bnnhw.outputs.atomic_write`: a crash or a signal never
    leaves half a file, and the file gets the usual permissions."""
    from ..outputs import atomic_write
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, write=lambda f: torch.save(obj, f))


def _unpickling_detail(e: Exception) -> str:
    """The reason in torch's weights-only refusal, without its advice to retry with
    ``weights_only=False`` (bnnhw never does: that would run the file's code)."""
    skip = ("weights only load failed", "weights_only", "please file an issue",
            "check the documentation")
    lines = [l.strip() for l in str(e).splitlines()]
    keep = [l for l in lines if l and not any(k in l.lower() for k in skip)]
    return " ".join(keep)[:200] or type(e).__name__


def _safe_torch_load(path: str, what: str, hint: str):
    """``torch.load(weights_only=True)`` with every refusal or damage as a ModelFileError
    (``what``: "checkpoint" or "training state"; ``hint``: what to do about damage)."""
    try:
        with warnings.catch_warnings():      # torch warns about odd pickle protocols
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _unpickling_detail(e)
        if "GLOBAL" in detail.upper():
            raise ModelFileError(f"{path!r} is not a safe bnnhw {what}: it asks to run "
                                 f"code or load objects other than tensors ({detail})",
                                 f"only load {what}s written by `bnnhw train`; "
                                 "this file was refused without running it") from None
        raise ModelFileError(f"{path!r} is not a readable {what} (truncated or corrupted, "
                             f"or not a torch file: {detail})", hint) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError,
            IndexError, TypeError, AttributeError, struct.error, UnicodeDecodeError,
            MemoryError) as e:  # what torch's zip reader and unpickler raise on damage
        raise ModelFileError(f"{path!r} is not a readable {what} (truncated or corrupted: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__})",
                             hint) from None


def save_checkpoint(path: str, *, spec: dict, model: torch.nn.Module, dataset: dict,
                    split: dict, meta: dict) -> None:
    """Write atomically (temp file + rename): a crash never leaves half a checkpoint.
    Tensors are stored contiguous (NCHW) on the CPU whatever the training layout/device."""
    obj = {"format": FORMAT, "version": VERSION, "spec": spec,
           "state_dict": {k: v.detach().cpu().contiguous().clone()
                          for k, v in model.state_dict().items()},
           "dataset": dataset, "split": split, "meta": meta}
    _atomic_torch_save(obj, path)


def state_path_for(output: str) -> str:
    """The resumable state written beside checkpoint ``output``: ``m.pt`` -> ``m.state.pt``."""
    root, ext = os.path.splitext(output)
    return (root if ext == ".pt" else output) + ".state.pt"


def _cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().contiguous().clone()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def save_state(path: str, state: dict) -> None:
    """Atomically write a training state (everything ``--resume`` needs)."""
    _atomic_torch_save({"format": STATE_FORMAT, "version": STATE_VERSION, **_cpu(state)}, path)


def find_state(path: str) -> str:
    """Resolve ``--resume PATH``: a state file, the checkpoint it sits beside, or a folder
    holding exactly one ``*.state.pt``."""
    if os.path.isdir(path):
        found = sorted(f for f in os.listdir(path) if f.endswith(".state.pt"))
        if len(found) != 1:
            raise ModelFileError(f"--resume {path!r}: the folder holds {len(found)} training "
                                 "states (*.state.pt)", "name the state file itself")
        return os.path.join(path, found[0])
    if path.endswith(".state.pt") or not os.path.exists(state_path_for(path)):
        return path
    return state_path_for(path)


def load_state(path: str) -> dict:
    """Load a training state without running code from it (``weights_only``)."""
    path = find_state(path)
    if not os.path.exists(path):
        raise ModelFileError(f"no training state at {path!r}",
                             "runs write it beside the checkpoint after every epoch "
                             "(m.pt -> m.state.pt); pass that file or the checkpoint")
    obj = _safe_torch_load(path, "training state", "resume from an earlier copy or start again")
    _check_format(obj, path, STATE_FORMAT, STATE_VERSION, "training state",
                  "pass the m.state.pt written beside the checkpoint m.pt", "start the run again")
    obj["path"] = path
    return obj


def _check_format(obj, path, fmt, version, what, hint_other, hint_version) -> None:
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise ModelFileError(f"{path!r} is a torch file but not a bnnhw {what}", hint_other)
    if obj.get("version") != version:
        raise ModelFileError(f"{path!r} has {what} version {obj.get('version')}, this bnnhw "
                             f"reads version {version}", hint_version)


def load_checkpoint(path: str) -> dict:
    """Load and validate a checkpoint without executing any code from it."""
    if not os.path.exists(path):
        raise ModelFileError(f"model file {path!r} does not exist",
                             "train one with `bnnhw train ... -o model.pt`")
    obj = _safe_torch_load(path, "checkpoint", "re-run training or copy the file again")
    _check_format(obj, path, FORMAT, VERSION, "checkpoint",
                  "train with `bnnhw train`, which writes spec and weights together",
                  "re-train or upgrade bnnhw")
    return obj


def model_from_checkpoint(ck: dict, path: str = "checkpoint") -> BNN:
    """Rebuild the torch model from a loaded checkpoint (eval mode).  The spec is
    validated, sizes within :mod:`bnnhw.limits`, before the model is allocated."""
    try:
        validate_spec(ck["spec"])
        model = BNN(ck["spec"])
    except (SpecError, KeyError, TypeError, AttributeError, ValueError, IndexError) as e:
        what = str(e) if isinstance(e, SpecError) else f"{type(e).__name__}: {e}"
        raise ModelFileError(f"{path}: invalid architecture spec: {what}",
                             "the checkpoint was not written by this bnnhw; re-train") from None
    sd = ck.get("state_dict", {})
    if not isinstance(sd, dict):
        raise ModelFileError(f"{path}: state_dict is a {type(sd).__name__}, not a dict",
                             "the file was edited or corrupted; re-train or re-copy it")
    want = model.state_dict()
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelFileError(f"{path}: state_dict entries that are not tensors: "
                             + ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else ""),
                             "the file was edited or corrupted; re-train or re-copy it")
    problems = [f"{k}: missing" for k in want if k not in sd]
    problems += [f"{k}: unexpected" for k in sd if k not in want]
    problems += [f"{k}: shape {tuple(sd[k].shape)} but spec needs {tuple(v.shape)}"
                 for k, v in want.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if problems:
        raise ModelFileError(f"{path}: weights do not match the architecture spec: "
                             + "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""),
                             "the file was edited or corrupted; re-train or re-copy it")
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:   # e.g. a dtype torch cannot copy
        raise ModelFileError(f"{path}: weights do not load: {str(e).splitlines()[0][:200]}",
                             "the file was edited or corrupted; re-train or re-copy it") from None
    model.eval()
    return model
