"""The fast path (fused attention, border windows that query only their real
tokens, with the padding folded into one key) against the plain reference
path kept for this purpose, and ``torch.compile`` of the backbone. fp32 on
CPU; no timings asserted."""
import shutil

import pytest
import torch

import gcvit_mm.models.layers.bias_attention as fused_bias
from gcvit_mm import GCViT
from gcvit_mm.models.layers import GCViTBlock, WindowAttention
from conftest import SMALL_ARCH, randomize_

TOL = dict(rtol=1e-5, atol=1e-5)

# The fused kernel's forward is a private aten op that older torch (2.0,
# 2.1) lacks; training then takes SDPA's math kernel (tested below).
needs_fused_op = pytest.mark.skipif(
    not fused_bias.AVAILABLE,
    reason=f'torch {torch.__version__} has no '
    f'aten::_scaled_dot_product_flash_attention_for_cpu (the fused CPU '
    f'attention op); its fallback is tested instead')


def _pair_of_models(**kwargs):
    """Fast (the defaults) and reference (plain math, padded windows)
    models with identical weights."""
    fast = randomize_(GCViT(SMALL_ARCH, **kwargs))
    ref = GCViT(SMALL_ARCH, use_sdpa=False, border='pad', **kwargs)
    ref.load_state_dict(fast.state_dict())
    return fast, ref


def _assert_close_to_scale(a, b, name, tol=1e-5):
    """max |a - b| <= tol * max(1, max |b|): gradients are sums over the
    whole map (entries up to ~100 here), so float32 summation order alone
    moves near-zero entries by more than an elementwise rtol allows."""
    diff = (a - b).abs().max().item()
    scale = max(1., b.abs().max().item())
    assert diff <= tol * scale, f'{name}: max diff {diff:.3g}, scale {scale:.3g}'


def _outputs_and_grads(model, x):
    outs = model(x)
    # Weight the channels so that no gradient is trivially uniform.
    loss = sum((o * torch.linspace(-1, 1, o.shape[1])[:, None, None]).sum()
               for o in outs)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()
             if p.grad is not None}
    return outs, grads


@pytest.mark.parametrize('window, hw', [
    (5, (83, 117)),  # partial last row and column of windows in every stage
    (7, (224, 96)),  # whole windows in stage 0, partial ones further down
    (24, (100, 150)),  # every map smaller than one window: corner only
])
@pytest.mark.compat
def test_fast_path_matches_reference_outputs_and_gradients(window, hw):
    fast, ref = _pair_of_models(window_size=window, drop_path_rate=0.)
    x = torch.rand(2, 3, *hw)
    outs_fast, grads_fast = _outputs_and_grads(fast.train(), x)
    outs_ref, grads_ref = _outputs_and_grads(ref.train(), x)
    for a, b in zip(outs_fast, outs_ref):
        torch.testing.assert_close(a, b, **TOL)
    assert grads_fast.keys() == grads_ref.keys() and len(grads_fast) > 100
    for name in grads_fast:
        _assert_close_to_scale(grads_fast[name], grads_ref[name], name)


@pytest.mark.compat
def test_without_the_fused_op_training_matches_reference(monkeypatch):
    """Where torch lacks the fused CPU op, training attends through SDPA
    (math kernel, the bias needing a gradient): same outputs and gradients
    as the reference path."""
    monkeypatch.setattr(fused_bias, 'AVAILABLE', False)
    calls = []
    monkeypatch.setattr(fused_bias, 'bias_attention',
                        lambda *a: calls.append(1))
    fast, ref = _pair_of_models(window_size=5, drop_path_rate=0.)
    x = torch.rand(2, 3, 83, 117)
    outs_fast, grads_fast = _outputs_and_grads(fast.train(), x)
    outs_ref, grads_ref = _outputs_and_grads(ref.train(), x)
    assert calls == []
    for a, b in zip(outs_fast, outs_ref):
        torch.testing.assert_close(a, b, **TOL)
    assert grads_fast.keys() == grads_ref.keys() and len(grads_fast) > 100
    for name in grads_fast:
        _assert_close_to_scale(grads_fast[name], grads_ref[name], name)


@pytest.mark.parametrize('use_sdpa', [True, False], ids=['sdpa', 'math'])
@pytest.mark.parametrize('window, hw', [
    (5, (83, 117)),  # partial last row and column of windows in every stage
    (24, (100, 150)),  # every map smaller than one window: corner only
])
def test_pad_border_matches_fold_border_on_the_same_kernel(window, hw,
                                                           use_sdpa):
    """border='pad' (the export path: pad to whole windows, no branch on the
    size) against border='fold' on the same kernel: the two settings are
    independent, and either border gives the same outputs and gradients
    (padding, global blocks, batch 2)."""
    fold = randomize_(GCViT(SMALL_ARCH, window_size=window, border='fold',
                            use_sdpa=use_sdpa, drop_path_rate=0.))
    pad = GCViT(SMALL_ARCH, window_size=window, border='pad',
                use_sdpa=use_sdpa, drop_path_rate=0.)
    pad.load_state_dict(fold.state_dict())
    blocks = [b for b in pad.modules() if isinstance(b, GCViTBlock)]
    assert {(b.border, b.attn.use_sdpa) for b in blocks} == {('pad', use_sdpa)}
    assert any(b.use_global for b in blocks)
    x = torch.rand(2, 3, *hw)
    outs_fold, grads_fold = _outputs_and_grads(fold.train(), x)
    outs_pad, grads_pad = _outputs_and_grads(pad.train(), x)
    for a, b in zip(outs_pad, outs_fold):
        torch.testing.assert_close(a, b, **TOL)
    assert grads_pad.keys() == grads_fold.keys() and len(grads_pad) > 100
    for name in grads_pad:
        _assert_close_to_scale(grads_pad[name], grads_fold[name], name, 1e-4)


def test_border_default_is_independent_of_the_kernel_and_checked():
    """'fold' by default whichever kernel; an explicit border is kept; a
    typo names the choices."""
    def borders(**kwargs):
        return {b.border for b in GCViT(SMALL_ARCH, **kwargs).modules()
                if isinstance(b, GCViTBlock)}
    assert borders() == {'fold'}
    assert borders(use_sdpa=False) == {'fold'}
    assert borders(border='pad') == {'pad'}
    with pytest.raises(ValueError,
                       match=r"border must be one of \('fold', 'pad'\), "
                       r"got 'padded'"):
        GCViT(SMALL_ARCH, border='padded')


@pytest.mark.compat
def test_fast_path_matches_reference_in_eval_mode():
    fast, ref = _pair_of_models(window_size=6)
    x = torch.rand(2, 3, 101, 77)
    with torch.no_grad():
        for a, b in zip(fast.eval()(x), ref.eval()(x)):
            torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize('use_global', [False, True])
def test_query_size_gives_the_top_left_rows_of_the_full_output(use_global):
    w, C = 4, 16
    attn = randomize_(WindowAttention(C, 2, w, use_global)).eval()
    x = torch.randn(6, w * w, C)  # batch 2, 3 windows per image
    tokens = torch.randn(2, w * w, C) if use_global else None
    with torch.no_grad():
        full = attn(x, tokens)
        cropped = attn(x, tokens, query_size=(3, 2))
    expected = full.view(6, w, w, C)[:, :3, :2].reshape(6, 6, C)
    torch.testing.assert_close(cropped, expected, **TOL)


@pytest.mark.parametrize('use_global', [False, True])
@pytest.mark.parametrize('qkv_bias', [True, False])
@pytest.mark.parametrize('query_size', [(3, 2), (4, 1), (2, 4)])
def test_attend_border_folds_the_padding_into_one_key(use_global, qkv_bias,
                                                      query_size):
    """A border window's real tokens with the padding folded into one key
    give what the zero-padded window gives for those tokens."""
    w, C = 4, 16
    attn = randomize_(WindowAttention(C, 2, w, use_global, qkv_bias)).eval()
    qh, qw = query_size
    real = torch.randn(6, qh, qw, C)  # batch 2, 3 windows per image
    padded = torch.zeros(6, w, w, C)
    padded[:, :qh, :qw] = real
    tokens = torch.randn(2, w * w, C) if use_global else None
    with torch.no_grad():
        expected = attn.attend(padded.flatten(1, 2), tokens, query_size)
        folded = attn.attend_border(real.flatten(1, 2), tokens, query_size)
    assert folded.shape == expected.shape == (6, 2, qh * qw, C // 2)
    torch.testing.assert_close(folded, expected, **TOL)


def _has_cpp_compiler() -> bool:
    return any(shutil.which(cc) for cc in ('g++', 'c++', 'clang++'))


@pytest.mark.skipif(not _has_cpp_compiler(),
                    reason='torch.compile (inductor) needs a C++ compiler')
def test_torch_compile_of_the_backbone_matches_eager():
    # Kept small, compiling takes most of the time: one global block
    # (stage 0), whole windows in stages 0-2, a padded corner window in 3.
    arch = dict(dim=16, depths=(2, 1, 1, 1), num_heads=(1, 2, 2, 4),
                mlp_ratio=2., layer_scale=1.)
    model = randomize_(GCViT(arch, window_size=4)).eval()
    x = torch.rand(2, 3, 64, 64)
    compiled = torch.compile(model)
    with torch.no_grad():
        eager = model(x)
        outs = compiled(x)
    for a, b in zip(outs, eager):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.compat
@needs_fused_op
def test_training_takes_the_fused_kernel_with_a_bias_gradient(monkeypatch):
    """In training the fast path must not fall back to SDPA's math kernel
    (which it does for a mask that needs a gradient): every attention call
    goes through bias_attention."""
    ba = fused_bias
    calls = []
    original = ba.bias_attention
    monkeypatch.setattr(ba, 'bias_attention',
                        lambda *a: calls.append(1) or original(*a))
    model = GCViT(SMALL_ARCH, window_size=5, drop_path_rate=0.).train()
    sum(o.sum() for o in model(torch.rand(2, 3, 83, 117))).backward()
    # every block of every stage, split into 4 border groups at most
    assert len(calls) >= sum(SMALL_ARCH['depths'])
    tables = [m.relative_position_bias_table for m in model.modules()
              if isinstance(m, WindowAttention)]
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in tables)


@pytest.mark.compat
@needs_fused_op
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_bias_attention_matches_the_formula(dtype):
    """softmax(q k^T / sqrt(d) + bias) v and all four gradients, with a
    strided q (as the global queries are); bf16 as autocast gives it."""
    ba = fused_bias
    gen = torch.Generator().manual_seed(0)
    B_, heads, Nq, Nk, d = 5, 3, 12, 25, 8
    q = torch.randn(B_, Nq, heads, d, generator=gen).transpose(1, 2)
    k, v = torch.randn(2, B_, heads, Nk, d, generator=gen)
    bias = torch.randn(1, heads, Nq, Nk, generator=gen)
    grad_out = torch.randn(B_, heads, Nq, d, generator=gen)
    results = []
    for fn, dt in ((ba.bias_attention, dtype), (lambda q, k, v, b: (
            (q * d**-0.5) @ k.transpose(-2, -1) + b).softmax(-1) @ v,
                                                  torch.float64)):
        inputs = [t.detach().to(dt).requires_grad_()
                  for t in (q, k, v, bias)]
        out = fn(*inputs)
        results.append([out] + list(
            torch.autograd.grad(out, inputs, grad_out.to(dt))))
    tol = 1e-5 if dtype == torch.float32 else 2e-2  # bf16: 8 mantissa bits
    for name, a, b in zip(('out', 'q', 'k', 'v', 'bias'), *results):
        assert a.dtype == dtype and a.shape == b.shape, name
        _assert_close_to_scale(a.double(), b, name, tol)
