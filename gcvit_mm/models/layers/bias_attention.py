"""softmax(q k^T * scale + bias) v with PyTorch's fused CPU kernel in
training too, where the bias (the relative position bias) needs a gradient.

``F.scaled_dot_product_attention`` picks its math kernel on CPU as soon as
the float mask requires grad: it materialises every window's N x N scores,
softmax and probabilities and keeps them for backward. Here the forward
and the q/k/v gradients come from the fused flash kernel (which also
returns the row log-sum-exp); only the bias gradient is computed apart, one
window at a time:

    P = exp(q k^T * scale + bias - lse),   dS = P * (dO v^T - rowsum(dO * O)),
    d bias = sum of dS over the windows (the bias is shared by all of them).

A GC ViT-T train step (batch 2, 384x576, 2 CPU cores, interleaved runs):
3.2 s with this, 3.8 s with SDPA's math kernel, 2.6 s with the fused kernel
and no bias gradient at all (not an option, the bias is learned).
"""
import torch

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
    """(1, heads, Nq, Nk) gradient of the shared bias, summed over windows.

    One window at a time: its (heads, Nq, Nk) scores (2.7-11 MiB at window
    24) stay near the cache, and each step is a few passes over them that
    write in place. Batches of windows measured slower (3.9 s per GC ViT-T
    train step with 64 MiB batches) for the copies that batching needs.
    """
    scale = q.shape[-1]**-0.5
    f32 = torch.float32
    # rowsum(dO * O): the softmax backward's correction, (B_, heads, Nq, 1)
    neg_delta = -(grad_out.to(f32) * out.to(f32)).sum(-1, keepdim=True)
    lse = lse.to(f32).unsqueeze(-1)
    bias32 = bias[0].to(f32)  # (heads, Nq, Nk)
    dbias = torch.zeros_like(bias32)
    for b in range(q.shape[0]):
        # P = exp(q k^T * scale + bias - lse); dP - delta = dO v^T - delta
        probs = torch.baddbmm(bias32, q[b].to(f32), k[b].to(f32).transpose(
            1, 2), alpha=scale).sub_(lse[b]).exp_()
        dp = torch.baddbmm(neg_delta[b], grad_out[b].to(f32),
                           v[b].to(f32).transpose(1, 2))
        dbias.addcmul_(probs, dp)
    return dbias.unsqueeze(0).to(bias.dtype)


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
