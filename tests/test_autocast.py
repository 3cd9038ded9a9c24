"""Mixed precision on CPU: the backbone runs forward and backward under
``torch.autocast('cpu', ...)`` on every path (fused attention, plain
reference, gradient checkpointing) with padded border windows and global
blocks, batch 2. The projections and attention compute in the autocast
dtype; the output norms (LayerNorm, which autocast keeps in float32) give
float32 maps within a stated tolerance of the float32 run, and gradients
close to float32's."""
import pytest
import torch

from gcvit_mm import GCViT
from conftest import SMALL_ARCH, randomize_

# Also run on the older stacks by CI's compatibility run (pytest -m compat).
pytestmark = pytest.mark.compat

# max |autocast - fp32| / max |fp32| per output map. Measured on this CPU:
# bfloat16 (8-bit mantissa) up to 0.017, float16 (11-bit) up to 0.002.
OUTPUT_TOL = {torch.bfloat16: 0.03, torch.float16: 0.005}
# cosine similarity of the whole flattened gradient with fp32's
GRAD_COSINE = {torch.bfloat16: 0.99, torch.float16: 0.999}


def _flat_grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters()
                      if p.grad is not None])


def _forward_backward(model, x):
    model.zero_grad()
    outs = model(x)
    weights = [torch.linspace(-1, 1, o.shape[1])[:, None, None] for o in outs]
    sum((o.float() * w).sum() for o, w in zip(outs, weights)).backward()
    return outs, _flat_grads(model)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('path', [dict(), dict(use_sdpa=False, border='pad'),
                                  dict(with_cp=True)],
                         ids=['fast', 'reference', 'with_cp'])
def test_autocast_forward_and_backward(dtype, path):
    # Skip only for a CPU build without low-precision matmuls, probed
    # apart: an error inside the model is a failure, not a skip.
    try:
        with torch.autocast('cpu', dtype=dtype):
            torch.nn.functional.linear(torch.rand(2, 4), torch.rand(3, 4))
    except RuntimeError as e:
        pytest.skip(f'autocast {dtype} unsupported on this CPU build: {e}')
    # window 5 on 83x117: partial windows (padding) in every stage; two
    # blocks per stage: local then global.
    model = randomize_(GCViT(SMALL_ARCH, window_size=5, drop_path_rate=0.,
                             **path)).train()
    x = torch.rand(2, 3, 83, 117)
    ref_outs, ref_grads = _forward_backward(model, x)

    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
             for m in (model.stages[0].blocks[0].attn.qkv,
                       model.stages[3].blocks[1].attn.kv,
                       model.stages[2].blocks[1].mlp.fc2)]
    try:
        with torch.autocast('cpu', dtype=dtype):
            outs, grads = _forward_backward(model, x)
    finally:
        for hook in hooks:
            hook.remove()

    # The projections really ran in low precision (with_cp runs them again
    # in the backward pass).
    assert len(seen) >= 3 and set(seen) == {dtype}
    for out, ref in zip(outs, ref_outs):
        assert out.dtype == torch.float32 and out.shape == ref.shape
        err = (out - ref).abs().max() / ref.abs().max()
        assert err <= OUTPUT_TOL[dtype], f'{dtype}: {err:.4f}'
    assert torch.isfinite(grads).all() and grads.numel() == ref_grads.numel()
    cosine = torch.nn.functional.cosine_similarity(grads, ref_grads, dim=0)
    assert cosine >= GRAD_COSINE[dtype], f'{dtype}: cosine {cosine:.5f}'
