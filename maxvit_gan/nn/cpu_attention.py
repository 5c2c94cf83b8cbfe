"""Attention with a trainable additive bias, on CPU: a leaner kernel than SDPA's fallback.

When the attention bias needs a gradient (training the relative position table), CPU
``F.scaled_dot_product_attention`` cannot use its fused kernel and falls back to an unfused
math path that allocates every score-sized intermediate anew, scales both q and k, and
checks for fully-masked rows. :func:`biased_attention_cpu` computes the same
``softmax(q k^T * d^-0.5 + bias) v`` with gradients for q, k, v and the bias, but:

* walks the batch in chunks whose (N x N) scores fit in cache (single thread);
* does the score-sized work in place: scale, bias and softmax into one preallocated
  probability buffer; softmax backward and the bias-gradient reduction per chunk;
* writes the q, k, v gradients straight into one packed buffer (no stack of three).

Numerically it is the reference attention (``maxvit_gan.nn.attention.attention`` with
``use_sdpa=False``): the scale is applied to the scores instead of to q, which is equal up
to float rounding; the tests compare both, forward and backward.
"""

from __future__ import annotations

import math

import torch

_CHUNK_BYTES = 1 << 20  # scores per chunk (about one L2 cache) when running single-threaded


def biased_attention_cpu(qkv: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T * d^-0.5 + bias) v for a packed ``qkv`` (3, B, ..., N, d) -> (B, ..., N, d).

    ``bias`` broadcasts to (B, ..., N, N) and gets a gradient when it requires one. Meant for
    float32 CPU tensors outside autocast and ``torch.compile`` (the caller decides).
    """
    q, k = qkv[0], qkv[1]
    if torch.get_num_threads() == 1:
        per_item = math.prod(q.shape[1:-1]) * k.shape[-2] * q.element_size()  # score bytes per batch index
        chunk = max(1, _CHUNK_BYTES // per_item)
    else:
        # one chunk: each chunk costs a dozen parallel regions, and with several threads their
        # synchronisation costs more than the cache saves
        chunk = q.shape[0]
    return _BiasedAttention.apply(qkv.contiguous(), bias, chunk)


class _BiasedAttention(torch.autograd.Function):
    """The kernel behind :func:`biased_attention_cpu`, ``chunk`` batch indices at a time."""

    @staticmethod
    def forward(ctx, qkv: torch.Tensor, bias: torch.Tensor, chunk: int) -> torch.Tensor:
        q, k, v = qkv.unbind(0)
        scale = q.shape[-1] ** -0.5
        probs = q.new_empty(q.shape[:-1] + (k.shape[-2],))
        out = torch.empty_like(q)
        for s in range(0, q.shape[0], chunk):
            sl = slice(s, s + chunk)
            scores = torch.matmul(q[sl], k[sl].transpose(-2, -1))
            scores.mul_(scale).add_(bias)
            torch.softmax(scores, -1, out=probs[sl])  # straight into the saved buffer
            torch.matmul(probs[sl], v[sl], out=out[sl])
        ctx.save_for_backward(qkv, probs)
        ctx.chunk, ctx.scale, ctx.bias_shape = chunk, scale, bias.shape
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        qkv, probs = ctx.saved_tensors
        q, k, v = qkv.unbind(0)
        grad_out = grad_out.contiguous()
        dqkv = torch.empty_like(qkv)
        dq, dk, dv = dqkv.unbind(0)
        dbias = None
        for s in range(0, q.shape[0], ctx.chunk):
            sl = slice(s, s + ctx.chunk)
            p, g = probs[sl], grad_out[sl]
            torch.matmul(p.transpose(-2, -1), g, out=dv[sl])
            # softmax backward: p * (dp - sum(dp * p)), dp = g v^T
            ds = torch._softmax_backward_data(torch.matmul(g, v[sl].transpose(-2, -1)), p, -1, p.dtype)
            if ctx.needs_input_grad[1]:
                part = ds.sum_to_size(ctx.bias_shape)
                dbias = part if dbias is None else dbias.add_(part)
            ds.mul_(ctx.scale)
            torch.matmul(ds, k[sl], out=dq[sl])
            torch.matmul(ds.transpose(-2, -1), q[sl], out=dk[sl])
        return dqkv, dbias, None
