"""Write compatibility fixtures with the previous bnnhw (run from its tree)."""
import json, os, shutil, sys
import numpy as np
sys.path.insert(0, "/tmp/h11_base")
from bnnhw.zoo import files
from bnnhw.ir import load_ir
from bnnhw.dataflow import plan_folding, build_design
from bnnhw.golden import GoldenModel
from tests.system.netgen import random_ir, random_images
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
shutil.copy(files("tfc-digits")["pt"], os.path.join(out, "tfc-digits.pt"))
ir = load_ir(str(files("tfc-digits")["bnn"]))
ir.save(os.path.join(out, "tfc-digits.bnn"))
plan = plan_folding(ir, target_cycles=300)
json.dump(plan.to_json(), open(os.path.join(out, "tfc-digits.folding.json"), "w"), indent=1, sort_keys=True)
small = random_ir(input=(12, 12, 3, 8), layers=[("conv", 8, 3, 1, 1), ("pool", 2), ("conv", 16, 3, 1, 0), ("pool", 2), ("fc", 32), ("fc", 10)], seed=7, signed=True, rank_table=True)
small.save(os.path.join(out, "small-rank.bnn"))
plan = plan_folding(small, target_cycles=5000)
json.dump(plan.to_json(), open(os.path.join(out, "small-rank.folding.json"), "w"), indent=1, sort_keys=True)
exp = {}
for name, net in (("tfc-digits", ir), ("small-rank", small)):
    x = random_images(net, 16, seed=3)
    cls, scores = GoldenModel(net).run(x)
    p = plan_folding(net, folding=json.load(open(os.path.join(out, f"{name}.folding.json"))))
    exp[name] = {"classes": cls.tolist(), "scores_sum": int(scores.sum()),
                 "folds": [[f.name, f.simd, f.pe, f.planes] for f in p.folds],
                 "bound_cycles": p.bound_cycles}
json.dump(exp, open(os.path.join(out, "expected.json"), "w"), indent=1, sort_keys=True)
print(json.dumps(exp)[:300])
