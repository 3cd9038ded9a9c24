"""softmax(q k^T * scale + bias) v with PyTorch's fused CPU kernel in
training too, where the bias (the relative position bias) needs a gradient.

``F.scaled_dot_product_attention`` picks its math kernel on CPU as soon as
the float mask requires grad: it materialises every window's N x N scores,
softmax and probabilities and keeps them for backward. (On a GC ViT-T train
step, batch 2 at 384x576 on 2 CPU cores, the fused kernel with the bias
gradient switched off takes 2.6 s instead of 4.1 s; this module, with it,
3.5 s.) Here the forward and the q/k/v gradients
come from the fused flash kernel (which also returns the row log-sum-exp);
only the bias gradient is computed apart, a chunk of windows at a time:

    P = exp(q k^T * scale + bias - lse),   dS = P * (dO v^T - rowsum(dO * O)),
    d bias = sum of dS over the windows (the bias is shared by all of them).
"""
import torch

# Windows per chunk of the bias gradient, so that a chunk's (n, heads, Nq,
# Nk) float32 scores stay near the cache: one window at a time for window 24
# (2.7-11 MiB). Chunks of 64 MiB made the train step above 3.9 s, not 3.5.
_CHUNK_BYTES = 4 * 2**20
# The fused CPU kernel's forward (with the log-sum-exp) and backward are
# private aten ops; without them attention keeps SDPA's own choice.
AVAILABLE = all(
    hasattr(torch.ops.aten, op)
    for op in ('_scaled_dot_product_flash_attention_for_cpu',
               '_scaled_dot_product_flash_attention_for_cpu_backward'))


def _flash_forward(q, k, v, bias):
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0., False, attn_mask=bias)


class _BiasAttention(torch.autograd.Function):

    @staticmethod
    def forward(ctx, q, k, v, bias):
        out, lse = _flash_forward(q, k, v, bias)
        ctx.save_for_backward(q, k, v, bias, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, bias, out, lse = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        dq, dk, dv = (
            torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                grad_out, q, k, v, out, lse, 0., False, attn_mask=bias))
        dbias = None
        if ctx.needs_input_grad[3]:
            dbias = _bias_grad(q, k, v, bias, out, lse, grad_out)
        return dq, dk, dv, dbias


def _bias_grad(q, k, v, bias, out, lse, grad_out):
    """(1, heads, Nq, Nk) gradient of the shared bias, summed over windows."""
    scale = q.shape[-1]**-0.5
    B_, heads, Nq, _ = q.shape
    Nk = k.shape[-2]
    # rowsum(dO * O): the softmax backward's correction, (B_, heads, Nq, 1)
    delta = (grad_out.float() * out.float()).sum(-1, keepdim=True)
    lse = lse.float().unsqueeze(-1)
    dbias = torch.zeros(1, heads, Nq, Nk, dtype=torch.float32,
                        device=q.device)
    step = max(1, _CHUNK_BYTES // (4 * heads * Nq * Nk))
    bias = bias.float()
    for s in range(0, B_, step):
        e = min(s + step, B_)
        n = e - s
        qs = q[s:e].float().reshape(n * heads, Nq, -1)
        ks = k[s:e].float().reshape(n * heads, Nk, -1)
        vs = v[s:e].float().reshape(n * heads, Nk, -1)
        dos = grad_out[s:e].float().reshape(n * heads, Nq, -1)
        # scores + bias in one kernel, then P in place
        probs = torch.baddbmm(
            bias.expand(n, -1, -1, -1).reshape(n * heads, Nq, Nk), qs,
            ks.transpose(1, 2), alpha=scale)
        probs.sub_(lse[s:e].reshape(n * heads, Nq, 1)).exp_()
        # dO v^T - delta in one kernel
        dp = torch.baddbmm(
            delta[s:e].neg().reshape(n * heads, Nq, 1).expand(-1, -1, Nk),
            dos, vs.transpose(1, 2))
        dbias += probs.mul_(dp).view(n, heads, Nq, Nk).sum(0, keepdim=True)
    return dbias.to(bias.dtype)


def bias_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   bias: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v through the fused CPU kernel,
    with gradients for q, k, v and the bias.

    Args:
        q: (B_, heads, Nq, d).
        k, v: (B_, heads, Nk, d).
        bias: (1, heads, Nq, Nk), shared by the B_ windows.

    Returns:
        (B_, heads, Nq, d).
    """
    return _BiasAttention.apply(q, k, v, bias)
