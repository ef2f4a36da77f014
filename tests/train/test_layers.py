"""Binarization, STE, clipping, shift-based BN and AdaMax against their definitions."""
import math

import pytest
import torch

from bnnhw.train.layers import (BatchNorm, BinaryActivation, BinaryConv2d, BinaryLinear,
                                ShiftBatchNorm, ap2, sign, sign_ste, stochastic_sign_ste)
from bnnhw.train.models import build_model, input_quant_for, make_spec
from bnnhw.train.optim import ShiftAdaMax, square_hinge_loss


def test_sign_of_zero_is_plus_one():
    x = torch.tensor([-2.0, -1e-30, 0.0, -0.0, 1e-30, 3.0])
    assert sign(x).tolist() == [-1, -1, 1, 1, 1, 1]
    assert sign_ste(x).tolist() == [-1, -1, 1, 1, 1, 1]
    assert BinaryActivation("det")(x).tolist() == [-1, -1, 1, 1, 1, 1]


def test_ste_gradient_is_masked_by_saturation():
    x = torch.tensor([-1.5, -1.0, -0.3, 0.0, 0.7, 1.0, 1.0001, 4.0], requires_grad=True)
    g = torch.arange(1.0, 9.0)
    sign_ste(x).backward(g)
    assert x.grad.tolist() == [0, 2, 3, 4, 5, 6, 0, 0]


def test_stochastic_sign_probability_and_gradient():
    torch.manual_seed(0)
    x = torch.full((200_000,), 0.5, requires_grad=True)
    y = stochastic_sign_ste(x)
    assert set(y.unique().tolist()) <= {-1.0, 1.0}
    p = (y > 0).float().mean().item()
    assert abs(p - 0.75) < 0.01  # hard_sigmoid(0.5) = 0.75
    y.sum().backward()
    assert torch.all(x.grad == 1)
    act = BinaryActivation("stochastic").eval()
    assert act(torch.tensor([0.2, -0.2])).tolist() == [1, -1]  # deterministic at eval


def test_binary_weights_in_forward_and_clipping_after_step():
    torch.manual_seed(0)
    lin = BinaryLinear(6, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.0, -0.2, 0.9, -1.0, 0.3, -0.0]] * 3))
    x = torch.ones(1, 6)
    assert lin(x).tolist() == [[1 - 1 + 1 - 1 + 1 + 1] * 3]
    spec = make_spec("tfc", input_shape=(1, 8, 8), num_classes=10,
                     input_quant=input_quant_for("digits"), dropout=0.0, input_dropout=0.0)
    m = build_model(spec)
    opt = torch.optim.SGD(m.parameters(), lr=100.0)  # huge step pushes weights out of range
    loss = square_hinge_loss(m(torch.randint(0, 17, (8, 1, 8, 8))), torch.arange(8) % 10)
    loss.backward()
    opt.step()
    assert max(b.core.weight.abs().max().item() for b in m.blocks) > 1
    m.clip_weights_()
    for b in m.blocks:
        assert b.core.weight.abs().max().item() <= 1.0
    # BN parameters are not clipped
    assert any(b.norm.weight.abs().max().item() > 1 for b in m.blocks)


def test_conv_pads_with_its_binary_value():
    conv = BinaryConv2d(1, 1, 3, padding=1, pad_value=1.0)
    with torch.no_grad():
        conv.weight.fill_(0.5)
    out = conv(-torch.ones(1, 1, 3, 3))
    # corner: 4 inputs of -1 and 5 pad cells of +1
    assert out[0, 0, 0, 0].item() == 1.0
    assert out[0, 0, 1, 1].item() == -9.0


def test_ap2_is_nearest_power_of_two_in_log_domain():
    x = torch.tensor([0.0, 1.0, -3.0, 0.3, 5.0, -0.75, 1e-3])
    y = ap2(x)
    assert y.tolist() == [0.0, 1.0, -4.0, 0.25, 4.0, -1.0, 2.0 ** -10]


def test_batchnorm_train_matches_torch_and_eval_is_canonical():
    torch.manual_seed(0)
    ours, ref = BatchNorm(4, eps=1e-4), torch.nn.BatchNorm2d(4, eps=1e-4)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(4)); ref.weight.copy_(ours.weight)
        ours.bias.copy_(torch.randn(4)); ref.bias.copy_(ours.bias)
    x = torch.randn(8, 4, 5, 5)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    ours.eval(); ref.eval()
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    # canonical: every position with the same value gives bit-identical output
    v = torch.full((3, 4, 7, 9), 13.0)
    out = ours(v)
    assert (out == out[0, :, 0, 0].view(1, 4, 1, 1)).all()
    assert (ours(torch.full((5, 4), 13.0)) == out[0, :, 0, 0]).all()


def test_shift_batchnorm_matches_float_bn_when_powers_of_two():
    """Shift BN = float BN exactly when the quantities AP2 rounds are powers of two,
    and stays within a factor sqrt(2) per approximation otherwise."""
    torch.manual_seed(0)
    sbn, bn = ShiftBatchNorm(3, eps=0.0), BatchNorm(3, eps=0.0)
    # x with per-channel values +-2^k: centred values are powers of two, so
    # C*AP2(C) = C^2 and the variance is exact; gamma a power of two.
    x = torch.tensor([[4.0, 1.0, 0.5], [-4.0, -1.0, -0.5]]).repeat(4, 1)
    with torch.no_grad():
        for m in (sbn, bn):
            m.weight.copy_(torch.tensor([2.0, 0.5, 1.0]))
            m.bias.copy_(torch.tensor([0.1, -0.2, 0.0]))
    torch.testing.assert_close(sbn(x), bn(x), rtol=0, atol=0)
    # generic data: each output within the two AP2 factors (sqrt(2) each) of float BN
    x = torch.randn(64, 3) * 3 + 1
    with torch.no_grad():
        for m in (sbn, bn):
            m.weight.copy_(torch.tensor([1.3, -0.7, 2.9]))
            m.bias.zero_()
    ys, yf = sbn(x), bn(x)
    ratio = (ys / yf)
    assert torch.all(ratio > 0)  # same signs
    assert torch.all(ratio < 2 * 2 ** 0.75) and torch.all(ratio > 1 / (2 * 2 ** 0.75))
    ys.sum().backward()  # gradients flow through AP2 (STE)
    assert sbn.weight.grad is not None and torch.isfinite(sbn.weight.grad).all()


def _adamax_run(opt_factory, grads):
    p = torch.nn.Parameter(torch.tensor([0.5, -0.25, 0.0, 1.0]))
    opt = opt_factory([p])
    traj = []
    for g in grads:
        opt.zero_grad()
        p.grad = g.clone()
        opt.step()
        traj.append(p.detach().clone())
    return traj


def test_shift_adamax_without_shift_equals_torch_adamax():
    torch.manual_seed(0)
    grads = [torch.randn(4) for _ in range(20)]
    ours = _adamax_run(lambda ps: ShiftAdaMax(ps, lr=0.01, shift=False), grads)
    ref = _adamax_run(lambda ps: torch.optim.Adamax(ps, lr=0.01), grads)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_shift_adamax_steps_are_power_of_two_approximations():
    torch.manual_seed(1)
    grads = [torch.randn(4) for _ in range(10)]
    s = _adamax_run(lambda ps: ShiftAdaMax(ps, lr=2 ** -6, betas=(0.5, 0.999), eps=0, shift=True), grads)
    f = _adamax_run(lambda ps: ShiftAdaMax(ps, lr=2 ** -6, betas=(0.5, 0.999), eps=0, shift=False), grads)
    prev_s = prev_f = torch.tensor([0.5, -0.25, 0.0, 1.0])
    for a, b in zip(s, f):
        ds, df = a - prev_s, b - prev_f
        nz = df != 0
        r = ds[nz] / df[nz]
        assert torch.all(r > 0)                        # same direction
        assert torch.all((r < 2.0001) & (r > 0.4999))  # two AP2 factors of at most sqrt(2)
        prev_s, prev_f = a, b
    # exact when the quantities are powers of two: |g| constant 2^-3, lr_t = 2^-6 / (1-0.5)
    g = [torch.full((4,), 0.125)]
    s1 = _adamax_run(lambda ps: ShiftAdaMax(ps, lr=2 ** -7, betas=(0.5, 0.999), eps=0, shift=True), g)
    f1 = _adamax_run(lambda ps: ShiftAdaMax(ps, lr=2 ** -7, betas=(0.5, 0.999), eps=0, shift=False), g)
    torch.testing.assert_close(s1[0], f1[0], rtol=0, atol=0)


def test_square_hinge_loss_definition():
    scores = torch.tensor([[2.0, -0.5, 0.0]])
    # targets +1, -1, -1 -> max(0, 1 - 2)^2 + max(0, 1 - 0.5)^2 + max(0, 1 - 0)^2 = 0 + .25 + 1
    assert math.isclose(square_hinge_loss(scores, torch.tensor([0])).item(), 1.25 / 3, rel_tol=1e-6)


@pytest.mark.parametrize("arch,shape,kind", [("tfc", (1, 8, 8), "digits"),
                                             ("cnv", (3, 32, 32), "image_signed"),
                                             ("vgg", (3, 32, 32), "image_signed")])
def test_reference_topologies_build_and_run(arch, shape, kind):
    torch.manual_seed(0)
    spec = make_spec(arch, input_shape=shape, num_classes=10, input_quant=input_quant_for(kind),
                     width=0.125)
    m = build_model(spec)
    out = m(torch.randint(0, 256, (2,) + shape))
    assert out.shape == (2, 10)
    out.sum().backward()


def test_glorot_weight_lr_scale_is_the_papers_per_layer_step():
    """--weight-lr-scale glorot: each binary weight moves lr / sqrt(1.5/(fan_in+fan_out))
    in Adam's first step (|step| = lr there), every other parameter moves lr."""
    from bnnhw.train.loop import TrainConfig, glorot_lr_scale, make_optimizer, set_lr
    torch.manual_seed(0)
    spec = make_spec("cnv", input_shape=(3, 32, 32), num_classes=10, width=0.125,
                     input_quant=input_quant_for("image_signed"))
    m = build_model(spec)
    conv0, fc_last = m.blocks[0].core, m.blocks[-1].core
    assert glorot_lr_scale(conv0) == pytest.approx(1 / math.sqrt(1.5 / (3 * 9 + 8 * 9)))
    assert glorot_lr_scale(fc_last) == pytest.approx(1 / math.sqrt(1.5 / (64 + 10)))
    cfg = TrainConfig(lr=1e-4, weight_lr_scale="glorot")
    opt = make_optimizer(cfg, m)
    set_lr(opt, cfg, 0)
    with torch.no_grad():                       # keep latent weights away from the clip
        for b in m.blocks:
            b.core.weight.mul_(0.5)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    loss = square_hinge_loss(m(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)),
                             torch.arange(4))
    loss.backward()
    opt.step()
    for name, p in m.named_parameters():
        moved = (p.detach() - before[name]).abs()
        moved = moved[p.grad.abs() > 1e-5]  # Adam: |step| = lr*|g|/(|g|+eps)
        core = dict(m.named_modules()).get(name.rsplit(".", 1)[0])
        want = 1e-4 * (glorot_lr_scale(core) if name.endswith("core.weight") else 1.0)
        assert moved.numel() and torch.allclose(moved, torch.full_like(moved, want), rtol=1e-3), name
    with pytest.raises(Exception, match="weight learning-rate scale .he."):
        make_optimizer(TrainConfig(weight_lr_scale="he"), m)
