"""softmax(q k^T * scale + bias) v with PyTorch's fused CPU kernel in
training too, where the bias (the relative position bias) needs a gradient.

``F.scaled_dot_product_attention`` picks its math kernel on CPU as soon as
the float mask requires grad: it materialises every window's N x N scores,
softmax and probabilities and keeps them all for backward. Here the forward
is the fused flash kernel, which keeps only the output and the row
log-sum-exp (lse); the backward recomputes one window's probabilities at a
time from them and gives every gradient from that one pass:

    P  = exp(q k^T * scale + bias - lse)
    dS = P * (dO v^T - rowsum(dO * O))
    dq = dS k * scale,   dk = dS^T q * scale,   dv = P^T dO,
    d bias = sum of dS over the windows (the bias is shared by all of them).

A GC ViT-T train step (batch 2, 384x576, 2 CPU cores, interleaved): 3.37 s
with SDPA's math kernel, 2.64 s with this. A first version used the fused
kernel's own backward for q, k, v and a second pass for the bias gradient:
3.12-3.18 s against 2.74-2.79 s for this one pass (docs/benchmark.md).
"""
import torch

# The fused CPU kernel's forward, which also returns the log-sum-exp, is a
# private aten op; without it attention keeps SDPA's own choice.
AVAILABLE = hasattr(torch.ops.aten,
                    '_scaled_dot_product_flash_attention_for_cpu')


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
        # backward() may run inside the caller's autocast region, which
        # would recast the float32 matmuls below against their out=.
        with torch.autocast('cpu', enabled=False):
            return _backward(*ctx.saved_tensors, grad_out)


def _backward(q, k, v, bias, out, lse, grad_out):
    """Gradients of q, k, v (like them) and of the shared bias
    ((1, heads, Nq, Nk), summed over windows), in float32 whatever the
    autocast dtype, then cast back.

    One window at a time: its (heads, Nq, Nk) scores (2.7-11 MiB at window
    24) stay near the cache, and each step is a few passes over them that
    write in place. Batches of windows measured slower (64 MiB batches:
    3.9 s per train step against 3.2) for the copies that batching needs.
    """
    scale = q.shape[-1]**-0.5
    f32 = torch.float32
    q32, k32, v32, grad32 = (t.to(f32) for t in (q, k, v, grad_out))
    # rowsum(dO * O): the softmax backward's correction, (B_, heads, Nq, 1)
    neg_delta = -(grad32 * out.to(f32)).sum(-1, keepdim=True)
    lse = lse.to(f32).unsqueeze(-1)
    bias32 = bias[0].to(f32)  # (heads, Nq, Nk)
    dbias = torch.zeros_like(bias32)
    dq, dk, dv = (torch.empty(t.shape, dtype=f32, device=t.device)
                  for t in (q, k, v))
    # Written in place for every window: fresh 10 MiB tensors per window
    # (stage 3) cost page faults on first touch that showed as slow copies.
    probs, dscores = torch.empty_like(bias32), torch.empty_like(bias32)
    for b in range(q.shape[0]):
        torch.baddbmm(bias32, q32[b], k32[b].transpose(1, 2), alpha=scale,
                      out=probs).sub_(lse[b]).exp_()
        torch.baddbmm(neg_delta[b], grad32[b], v32[b].transpose(1, 2),
                      out=dscores).mul_(probs)
        torch.bmm(probs.transpose(1, 2), grad32[b], out=dv[b])
        torch.bmm(dscores, k32[b], out=dq[b])
        torch.bmm(dscores.transpose(1, 2), q32[b], out=dk[b])
        dbias.add_(dscores)
    return (dq.mul_(scale).to(q.dtype), dk.mul_(scale).to(k.dtype),
            dv.to(v.dtype), dbias.unsqueeze(0).to(bias.dtype))


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
