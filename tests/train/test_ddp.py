"""`torchrun --nproc_per_node=2 -m bnnhw train` equals a single-process run at the same global batch."""
import os
import shutil
import subprocess
import sys

import torch

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
ARGS = ["train", "--arch", "tfc", "--dataset", "digits", "--epochs", "2", "--batch-size", "64",
        "--width", "0.5", "--dropout", "0", "--input-dropout", "0", "--precision", "64",
        "--seed", "5", "--json"]


def _torchrun():
    exe = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]


def test_ddp_two_processes_equal_single_process(tmp_path):
    single, multi = tmp_path / "single.pt", tmp_path / "ddp.pt"
    subprocess.run([sys.executable, "-m", "bnnhw", *ARGS, "-o", str(single)], check=True,
                   env=ENV, capture_output=True, timeout=600)
    r = subprocess.run([*_torchrun(), "--standalone", "--nproc_per_node=2", "-m", "bnnhw", *ARGS,
                        "-o", str(multi)], env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    a = torch.load(single, weights_only=True)
    b = torch.load(multi, weights_only=True)
    assert b["meta"]["world_size"] == 2 and a["meta"]["world_size"] == 1
    for k, v in a["state_dict"].items():
        w = b["state_dict"][k]
        assert v.dtype == torch.float64
        torch.testing.assert_close(w, v, rtol=1e-9, atol=1e-10, msg=k)
        if k.endswith("core.weight"):
            assert torch.equal(torch.where(w >= 0, 1, -1), torch.where(v >= 0, 1, -1)), k
    # it did train: the weights moved away from the seed's initialisation
    from bnnhw.train.models import BNN
    torch.manual_seed(5)
    init = BNN(a["spec"]).state_dict()
    assert not torch.allclose(init["blocks.0.core.weight"].double(),
                              a["state_dict"]["blocks.0.core.weight"])
