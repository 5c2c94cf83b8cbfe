"""Multi-axis self-attention (Max-SA) and cross-attention.

Max-SA (MaxViT, Tu et al. 2022) splits global attention into two sparse forms:

* block attention: attention inside contiguous P x P tiles (local);
* grid attention: attention among the G x G tokens spaced H/G apart (dilated, global).

Both cost O(H * W) for fixed P, G. Tensors enter and leave as ``(B, C, H, W)``;
internally the sublayers work channels-last ``(B, H, W, C)`` and attention runs on
``(B * groups, tokens, C)``.

Sides that are not divisible by the window (grid) are zero-padded and cropped back;
padded tokens are masked out of the keys so they never influence real tokens.
Windows larger than the map are clamped to the map.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from maxvit_gan.nn.cpu_attention import biased_attention_cpu

# --------------------------------------------------------------------------- partitions


def window_partition(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/ph * W/pw, ph * pw, C): contiguous ph x pw tiles, row-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // ph, ph, w // pw, pw, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ph * pw, c)


def window_reverse(t: torch.Tensor, ph: int, pw: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`."""
    c = t.shape[-1]
    b = t.shape[0] // ((h // ph) * (w // pw))
    t = t.view(b, h // ph, w // pw, ph, pw, c).permute(0, 1, 3, 2, 4, 5)
    return t.reshape(b, h, w, c)


def grid_partition(x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/gh * W/gw, gh * gw, C): each group is the gh x gw tokens spaced
    (H/gh, W/gw) apart."""
    b, h, w, c = x.shape
    x = x.view(b, gh, h // gh, gw, w // gw, c).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(-1, gh * gw, c)


def grid_reverse(t: torch.Tensor, gh: int, gw: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`grid_partition`."""
    c = t.shape[-1]
    b = t.shape[0] // ((h // gh) * (w // gw))
    t = t.view(b, h // gh, w // gw, gh, gw, c).permute(0, 3, 1, 4, 2, 5)
    return t.reshape(b, h, w, c)


def _split_qkv_windows(qkv: torch.Tensor, ph: int, pw: int, heads: int) -> torch.Tensor:
    """(B, H, W, 3C) -> (3, B, groups, heads, ph*pw, d) with one copy; groups = tiles, row-major."""
    b, h, w, c3 = qkv.shape
    d = c3 // (3 * heads)
    t = qkv.view(b, h // ph, ph, w // pw, pw, 3, heads, d).permute(5, 0, 1, 3, 6, 2, 4, 7)
    return t.reshape(3, b, (h // ph) * (w // pw), heads, ph * pw, d)


def _merge_windows(o: torch.Tensor, ph: int, pw: int, h: int, w: int) -> torch.Tensor:
    """(B, groups, heads, ph*pw, d) -> (B, H, W, heads*d): inverse layout of the split."""
    b, _, heads, _, d = o.shape
    o = o.view(b, h // ph, w // pw, heads, ph, pw, d).permute(0, 1, 4, 2, 5, 3, 6)
    return o.reshape(b, h, w, heads * d)


def _split_qkv_grid(qkv: torch.Tensor, gh: int, gw: int, heads: int) -> torch.Tensor:
    """(B, H, W, 3C) -> (3, B, groups, heads, gh*gw, d); group (i, j) holds the tokens at
    (i + y * H/gh, j + x * W/gw)."""
    b, h, w, c3 = qkv.shape
    d = c3 // (3 * heads)
    t = qkv.view(b, gh, h // gh, gw, w // gw, 3, heads, d).permute(5, 0, 2, 4, 6, 1, 3, 7)
    return t.reshape(3, b, (h // gh) * (w // gw), heads, gh * gw, d)


def _merge_grid(o: torch.Tensor, gh: int, gw: int, h: int, w: int) -> torch.Tensor:
    """(B, groups, heads, gh*gw, d) -> (B, H, W, heads*d): inverse layout of the split."""
    b, _, heads, _, d = o.shape
    o = o.view(b, h // gh, w // gw, heads, gh, gw, d).permute(0, 4, 1, 5, 2, 3, 6)
    return o.reshape(b, h, w, heads * d)


# --------------------------------------------------------------------------- relative position bias


class RelativePositionBias(nn.Module):
    """Learned bias per head for each relative offset inside a P x P window.

    Table ``((2P-1)^2, heads)``, trunc-normal(0.02) init. A smaller (clamped, possibly
    rectangular) window indexes the same table with its own offsets. The flat gather index
    is cached per (window, device).
    """

    def __init__(self, window_size: int, num_heads: int):
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.table, std=0.02)
        self._index_cache: dict[tuple[int, int, str], torch.Tensor] = {}

    def _index(self, ph: int, pw: int, device: torch.device) -> torch.Tensor:
        key = (ph, pw, str(device))
        idx = self._index_cache.get(key)
        if idx is None:
            ys, xs = torch.meshgrid(torch.arange(ph), torch.arange(pw), indexing="ij")
            ys, xs = ys.flatten(), xs.flatten()
            p = self.window_size
            dy = ys[:, None] - ys[None, :] + p - 1
            dx = xs[:, None] - xs[None, :] + p - 1
            idx = (dy * (2 * p - 1) + dx).to(device)
            self._index_cache[key] = idx
        return idx

    def forward(self, ph: int, pw: int) -> torch.Tensor:
        """-> (heads, ph*pw, ph*pw), contiguous."""
        idx = self._index(ph, pw, self.table.device)
        n = idx.shape[0]
        # gather rows of the transposed table: the result comes out head-major and contiguous
        return self.table.t().index_select(1, idx.flatten()).view(self.num_heads, n, n)


# --------------------------------------------------------------------------- attention core


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, use_sdpa: bool = True
) -> torch.Tensor:
    """Scaled dot-product attention, (B, heads, N, d) -> (B, heads, N, d); scale d ** -0.5.

    ``bias`` (additive, broadcastable to (B, heads, N, M)) carries the relative position
    bias and the padding mask (-inf). The reference path (``use_sdpa=False``) computes the
    softmax in float32 for half and bfloat16 inputs and in the input dtype otherwise; the
    fused SDPA kernels accumulate it in float32 themselves.
    """
    if use_sdpa:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    logits = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if bias is not None:
        logits = logits + bias
    probs = logits.to(torch.promote_types(logits.dtype, torch.float32)).softmax(dim=-1)
    return probs.to(v.dtype) @ v


def qkv_attention(qkv: torch.Tensor, bias: torch.Tensor | None, use_sdpa: bool = True) -> torch.Tensor:
    """:func:`attention` on a packed (3, B, ..., N, d) qkv tensor, by the fastest route.

    SDPA, except on CPU when the bias needs a gradient (training the relative position
    table): there SDPA has no fused kernel, so float32 goes through
    :func:`~maxvit_gan.nn.cpu_attention.biased_attention_cpu` and the rest (autocast, other
    dtypes, ``torch.compile``, whose inductor fuses the plain product itself) through the
    reference path. ``use_sdpa=False``: always the reference path.
    """
    q, k, v = qkv.unbind(0)
    if not use_sdpa:
        return attention(q, k, v, bias, use_sdpa=False)
    bias_grad = bias is not None and bias.requires_grad and torch.is_grad_enabled()
    if not (bias_grad and q.device.type == "cpu"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    if (
        qkv.dtype == torch.float32
        and bias.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
    ):
        return biased_attention_cpu(qkv, bias)
    return attention(q, k, v, bias, use_sdpa=False)


# --------------------------------------------------------------------------- Max-SA sublayers


class _PartitionAttention(nn.Module):
    """Pre-norm multi-head self-attention over a partition of the map, with residual.

    Subclasses choose the partition (tiles or grid). Relative position bias per sublayer.

    Fast layout: LayerNorm and the fused qkv projection run on the whole channels-last map;
    the qkv tensor is then partitioned with a single view/permute/copy straight into
    (3, B, groups, heads, N, d); the attention output is merged back to (B, H, W, C) with one
    more copy before the output projection. The bias (heads, N, N) broadcasts over the batch
    and groups (no repeat); padding masks are per group, also broadcast over the batch.
    """

    # set by each subclass: the token partition, and the fused qkv split / output merge
    partition: Callable[[torch.Tensor, int, int], torch.Tensor]
    _split: Callable[[torch.Tensor, int, int, int], torch.Tensor]
    _merge: Callable[[torch.Tensor, int, int, int, int], torch.Tensor]

    def __init__(self, dim: int, num_heads: int, size: int, use_sdpa: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.size = size
        self.use_sdpa = use_sdpa
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = RelativePositionBias(size, num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return self.forward_nhwc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C): x + attn(norm(x))."""
        b, h, w, c = x.shape
        if c != self.dim:
            raise ValueError(f"{type(self).__name__}: expected {self.dim} channels, got input of shape {tuple(x.shape)}")
        sh, sw = min(self.size, h), min(self.size, w)
        hp, wp = math.ceil(h / sh) * sh, math.ceil(w / sw) * sw
        padded = (hp, wp) != (h, w)
        y = F.layer_norm(x, self.norm.normalized_shape, self.norm.weight, self.norm.bias, self.norm.eps)
        qkv = F.linear(y, self.qkv.weight, self.qkv.bias)  # (B, H, W, 3C)
        if padded:  # pad after the projection: padded keys are masked, padded queries cropped
            qkv = F.pad(qkv, (0, 0, 0, wp - w, 0, hp - h))
        qkv = self._split(qkv, sh, sw, self.num_heads)  # (3, B, groups, heads, N, d)
        bias = self.rel_bias(sh, sw).to(qkv.dtype)  # (heads, N, N)
        if padded:
            bias = bias + self._pad_mask(h, w, hp, wp, sh, sw, x.device, qkv.dtype)  # (groups, heads, N, N)
            out = qkv_attention(qkv, bias, self.use_sdpa)
        else:
            n, d = qkv.shape[-2:]
            # 4-D q, k, v and a 4-D mask: CPU SDPA takes its fused kernel only with those
            out = qkv_attention(qkv.view(3, -1, self.num_heads, n, d), bias[None], self.use_sdpa)
            out = out.view(b, -1, self.num_heads, n, d)
        out = self._merge(out, sh, sw, hp, wp)  # (B, Hp, Wp, C)
        if padded:
            out = out[:, :h, :w]
        return F.linear(out, self.proj.weight, self.proj.bias) + x  # new tensor first: its layout wins

    def _pad_mask(self, h, w, hp, wp, sh, sw, device, dtype) -> torch.Tensor:
        """Additive key mask (groups, 1, 1, N): -inf on padded tokens, 0 elsewhere."""
        valid = torch.zeros(1, hp, wp, 1, device=device, dtype=torch.bool)
        valid[:, :h, :w] = True
        valid = self.partition(valid, sh, sw)[..., 0]  # (groups, N)
        mask = torch.zeros(valid.shape, device=device, dtype=dtype).masked_fill(~valid, float("-inf"))
        return mask[:, None, None, :]


class BlockAttention(_PartitionAttention):
    """Max-SA block (window) attention: tokens attend within contiguous P x P tiles."""

    partition = staticmethod(window_partition)
    _split = staticmethod(_split_qkv_windows)
    _merge = staticmethod(_merge_windows)

    def __init__(self, dim: int, num_heads: int, window_size: int, use_sdpa: bool = True):
        super().__init__(dim, num_heads, window_size, use_sdpa)


class GridAttention(_PartitionAttention):
    """Max-SA grid attention: tokens attend among the G x G tokens spaced H/G apart."""

    partition = staticmethod(grid_partition)
    _split = staticmethod(_split_qkv_grid)
    _merge = staticmethod(_merge_grid)

    def __init__(self, dim: int, num_heads: int, grid_size: int, use_sdpa: bool = True):
        super().__init__(dim, num_heads, grid_size, use_sdpa)


# --------------------------------------------------------------------------- cross-attention


class CrossAttention(nn.Module):
    """Pre-norm cross-attention with residual: image tokens (queries) attend to latent tokens.

    ``x``: (B, C, H, W); ``context``: (B, M, context_dim) -> (B, C, H, W).
    """

    def __init__(self, dim: int, context_dim: int, num_heads: int, use_sdpa: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.use_sdpa = use_sdpa
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        hd = c // self.num_heads
        t = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
        q = self.q(self.norm(t)).view(b, h * w, self.num_heads, hd).transpose(1, 2)
        kv = self.kv(self.norm_context(context)).view(b, -1, 2, self.num_heads, hd).permute(2, 0, 3, 1, 4)
        out = attention(q, kv[0], kv[1], None, self.use_sdpa)
        out = self.proj(out.transpose(1, 2).reshape(b, h * w, c))
        return x + out.view(b, h, w, c).permute(0, 3, 1, 2)


def set_attention_backend(module: nn.Module, use_sdpa: bool) -> nn.Module:
    """Switch every attention layer in ``module`` between SDPA and the reference path."""
    for m in module.modules():
        if hasattr(m, "use_sdpa"):
            m.use_sdpa = use_sdpa
    return module
