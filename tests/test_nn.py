"""Max-SA building blocks: partitions, locality, SDPA vs reference, dtypes, layouts, cost."""

import _reference_nn as R  # the original implementation, frozen
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from maxvit_gan.nn import (
    BlockAttention,
    CrossAttention,
    GridAttention,
    MaxViTBlock,
    MBConv,
    grid_partition,
    grid_reverse,
    set_attention_backend,
    window_partition,
    window_reverse,
)
from maxvit_gan.nn.attention import attention
from maxvit_gan.nn.cpu_attention import biased_attention_cpu


@pytest.mark.parametrize("h,w,p", [(8, 8, 4), (8, 12, 4), (6, 10, 2), (16, 8, 8)])
def test_partition_round_trip(h, w, p):
    x = torch.randn(2, h, w, 5)
    assert torch.equal(window_reverse(window_partition(x, p, p), p, p, h, w), x)
    assert torch.equal(grid_reverse(grid_partition(x, p, p), p, p, h, w), x)


def test_window_tiles_are_contiguous_and_grid_tokens_are_spaced():
    h = w = 8
    idx = torch.arange(h * w).view(1, h, w, 1)
    tiles = window_partition(idx, 4, 4)[..., 0]  # (4 tiles, 16)
    assert tiles.shape == (4, 16)
    # first tile = rows 0..3, cols 0..3
    expected = torch.tensor([r * w + c for r in range(4) for c in range(4)])
    assert torch.equal(tiles[0], expected)
    # second tile = rows 0..3, cols 4..7
    assert torch.equal(tiles[1], expected + 4)
    groups = grid_partition(idx, 4, 4)[..., 0]  # G=4: tokens spaced H/G = 2 apart
    assert groups.shape == (4, 16)
    expected = torch.tensor([r * 2 * w + c * 2 for r in range(4) for c in range(4)])
    assert torch.equal(groups[0], expected)
    assert torch.equal(groups[1], expected + 1)  # next group: offset one column
    assert torch.equal(groups[2], expected + w)  # offset one row


def _input_dependency(module, shape, out_yx):
    x = torch.randn(*shape, requires_grad=True)
    y = module(x)
    y[0, :, out_yx[0], out_yx[1]].sum().backward()
    return x.grad[0].abs().sum(0) > 0  # (H, W) mask of pixels the output depends on


def test_block_attention_is_local_to_its_tile():
    attn = BlockAttention(32, 2, window_size=4)
    dep = _input_dependency(attn, (1, 32, 16, 16), (5, 6))
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[4:8, 4:8] = True
    assert torch.equal(dep, expected)


def test_grid_attention_is_local_to_its_grid_group():
    attn = GridAttention(32, 2, grid_size=4)  # stride 16/4 = 4
    dep = _input_dependency(attn, (1, 32, 16, 16), (5, 6))
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[1::4, 2::4] = True
    assert torch.equal(dep, expected)


def test_maxvit_block_has_global_receptive_field():
    block = MaxViTBlock(32, 2, window_size=4, grid_size=4)
    for p in block.parameters():  # zero-init projections would hide the MBConv path
        torch.nn.init.normal_(p, std=0.1)
    dep = _input_dependency(block, (1, 32, 16, 16), (0, 0))
    assert dep.all()


def test_reference_path_keeps_float64():
    """float64 stays float64 through the reference path (softmax included): equal to the math
    written out in float64 to ~1e-12, which a float32 softmax misses by orders of magnitude."""
    attn = _randomize(BlockAttention(64, 2, 4, use_sdpa=False), std=0.2).double()
    x = torch.randn(2, 64, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        y = attn(x)
        t = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        tiles = window_partition(attn.qkv(attn.norm(t)), 4, 4)  # (B * 4 tiles, 16, 3C)
        q, k, v = tiles.view(-1, 16, 3, 2, 32).permute(2, 0, 3, 1, 4)  # (B', heads, 16, d)
        logits = q @ k.transpose(-2, -1) / 32**0.5 + attn.rel_bias(4, 4)

        def finish(probs):  # (B', heads, 16, 16) -> (B, C, H, W)
            o = (probs @ v).transpose(1, 2).reshape(-1, 16, 64)
            return (attn.proj(window_reverse(o, 4, 4, 8, 8)) + t).permute(0, 3, 1, 2)

        expected = finish(logits.softmax(-1))
        with_f32_softmax = finish(logits.float().softmax(-1).double())
    assert y.dtype == torch.float64
    assert (y - expected).abs().max() < 1e-12
    assert (with_f32_softmax - expected).abs().max() > 1e-10  # the check can tell the difference


def test_biased_attention_cpu_equals_reference():
    """The CPU kernel, several batch chunks deep (80 x 32 KB of scores), against the reference
    attention: outputs and gradients for q, k, v and the broadcast bias."""
    torch.manual_seed(0)
    qkv = torch.randn(3, 80, 2, 64, 16)
    bias = (torch.randn(2, 64, 64) * 0.1)[None]
    qkv_a, bias_a = qkv.clone().requires_grad_(), bias.clone().requires_grad_()
    qkv_b, bias_b = qkv.clone().requires_grad_(), bias.clone().requires_grad_()
    y_a = biased_attention_cpu(qkv_a, bias_a)
    y_b = attention(*qkv_b.unbind(0), bias_b, use_sdpa=False)
    torch.testing.assert_close(y_a, y_b, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(y_b)
    y_a.backward(g)
    y_b.backward(g)
    torch.testing.assert_close(qkv_a.grad, qkv_b.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bias_a.grad, bias_b.grad, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("cls,size", [(BlockAttention, 4), (GridAttention, 4)])
@pytest.mark.parametrize("hw", [(8, 8), (8, 12), (6, 10), (3, 3)])
def test_sdpa_equals_reference(cls, size, hw):
    attn = cls(64, 2, size)
    x = torch.randn(2, 64, *hw)
    y_sdpa = attn(x)
    y_ref = set_attention_backend(attn, False)(x)
    assert y_sdpa.shape == x.shape
    assert torch.allclose(y_sdpa, y_ref, atol=1e-5, rtol=1e-5)


def test_padding_does_not_leak_into_real_tokens():
    """A 6x6 map with window 4 is padded to 8x8; results must not depend on the pad value,
    and must equal attention computed on the cropped tiles directly."""
    torch.manual_seed(1)
    attn = BlockAttention(32, 1, 4)
    x = torch.randn(1, 32, 6, 6)
    y = attn(x)
    # tile (0,0) of the padded map holds x[:, :, :4, :4] and nothing else: same as a 4x4 map
    y00 = attn(x[:, :, :4, :4])
    assert torch.allclose(y[:, :, :4, :4], y00, atol=1e-5)
    # the bottom-right tile holds only the 2x2 real tokens
    y11 = attn(x[:, :, 4:, 4:])
    assert torch.allclose(y[:, :, 4:, 4:], y11, atol=1e-5)


def test_window_clamps_to_small_map():
    attn = BlockAttention(32, 1, 8)
    x = torch.randn(2, 32, 4, 4)  # window 8 > map 4: one 4x4 window = full attention
    y = attn(x)
    dep = _input_dependency(attn, (1, 32, 4, 4), (0, 0))
    assert y.shape == x.shape and dep.all()


def test_bf16_autocast_is_finite():
    block = MaxViTBlock(64, 2, 4, 4)
    x = torch.randn(2, 64, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(x)
    assert torch.isfinite(y).all()
    assert (y.float() - block(x)).abs().max() < 0.5


def test_channels_last_gives_same_output():
    block = MaxViTBlock(64, 2, 4, 4)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(2, 64, 16, 16)
    y = block(x)
    y_cl = block.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    assert torch.allclose(y, y_cl, atol=1e-5)


def test_mbconv_width_change_and_upsampling():
    m = MBConv(32, 64, upsample=True)
    y = m(torch.randn(2, 32, 8, 8))
    assert y.shape == (2, 64, 16, 16)
    m = MBConv(32, 16)
    assert m(torch.randn(1, 32, 5, 7)).shape == (1, 16, 5, 7)


def test_cross_attention_depends_on_context():
    ca = CrossAttention(32, 48, 2)
    for p in ca.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(2, 32, 4, 4)
    c1, c2 = torch.randn(2, 16, 48), torch.randn(2, 16, 48)
    assert ca(x, c1).shape == x.shape
    assert not torch.allclose(ca(x, c1), ca(x, c2))


def _attention_flops(module, x):
    with FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops()


def test_attention_work_is_linear_in_pixels():
    """x4 pixels -> x4 FLOPs for Max-SA (counted with SDPA calls), x16 for full attention's
    score matrix."""
    block = MaxViTBlock(32, 1, 4, 4)
    f16 = _attention_flops(block, torch.randn(1, 32, 16, 16))
    f32 = _attention_flops(block, torch.randn(1, 32, 32, 32))
    assert f32 / f16 == pytest.approx(4.0, rel=1e-3)  # squeeze-excite on pooled vectors is constant
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def full_attention(x):
        t = x.flatten(2).transpose(1, 2)[:, None]
        return sdpa(t, t, t)

    class Full(torch.nn.Module):
        def forward(self, x):
            return full_attention(x)

    g16 = _attention_flops(Full(), torch.randn(1, 32, 16, 16))
    g32 = _attention_flops(Full(), torch.randn(1, 32, 32, 32))
    assert g32 / g16 == pytest.approx(16.0, rel=1e-6)
    # and the SDPA calls in the block do count: removing attention changes the total
    blk_attn = BlockAttention(32, 1, 4)
    assert _attention_flops(blk_attn, torch.randn(1, 32, 16, 16)) > 0


# --------------------------------------------------------------------------- fast path == original math


def _randomize(module, std=0.05):
    """Zero-init projections would hide whole paths: give every parameter a random value."""
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


def _assert_same_fwd_bwd(fast, ref, x, atol=1e-5):
    ref.load_state_dict(fast.state_dict())  # same keys: the state dict layout is unchanged
    xf, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    yf, yr = fast(xf), ref(xr)
    assert yf.shape == yr.shape
    assert torch.allclose(yf, yr, atol=atol, rtol=1e-5), (yf - yr).abs().max()
    g = torch.randn_like(yr)
    yf.backward(g)
    yr.backward(g)
    assert torch.allclose(xf.grad, xr.grad, atol=atol, rtol=1e-5), (xf.grad - xr.grad).abs().max()
    pf, pr = dict(fast.named_parameters()), dict(ref.named_parameters())
    for name, p in pf.items():
        assert torch.allclose(p.grad, pr[name].grad, atol=atol, rtol=1e-4), (name, (p.grad - pr[name].grad).abs().max())


@pytest.mark.parametrize("kind", ["block", "grid"])
@pytest.mark.parametrize("hw,size", [((8, 8), 4), ((8, 12), 4), ((6, 10), 4), ((3, 3), 4), ((16, 16), 8)])
@pytest.mark.parametrize("use_sdpa", [True, False])
def test_fast_attention_equals_original(kind, hw, size, use_sdpa):
    fast_cls, ref_cls = (BlockAttention, R.BlockAttention) if kind == "block" else (GridAttention, R.GridAttention)
    fast = _randomize(fast_cls(64, 2, size, use_sdpa=use_sdpa))
    ref = ref_cls(64, 2, size, use_sdpa=use_sdpa)
    _assert_same_fwd_bwd(fast, ref, torch.randn(2, 64, *hw))


@pytest.mark.parametrize("dim,hw,window,grid", [(64, 16, 8, 8), (64, 16, 4, 4), (32, 12, 8, 4), (64, 8, 8, 8)])
def test_fast_maxvit_block_equals_original(dim, hw, window, grid):
    fast = _randomize(MaxViTBlock(dim, dim // 32, window, grid))
    ref = R.MaxViTBlock(dim, dim // 32, window, grid)
    _assert_same_fwd_bwd(fast, ref, torch.randn(2, dim, hw, hw))
    with torch.no_grad():  # inference route (fused SDPA kernel, no bias grad)
        assert torch.allclose(fast(torch.ones(1, dim, hw, hw)), ref(torch.ones(1, dim, hw, hw)), atol=1e-5)


@pytest.mark.parametrize("cin,cout,up", [(32, 32, False), (32, 64, True), (32, 16, False)])
def test_fast_mbconv_equals_original(cin, cout, up):
    fast = _randomize(MBConv(cin, cout, upsample=up))
    ref = R.MBConv(cin, cout, upsample=up)
    _assert_same_fwd_bwd(fast, ref, torch.randn(2, cin, 6, 10))


def test_fast_block_channels_last_input_and_bf16_match_original():
    fast = _randomize(MaxViTBlock(64, 2, 4, 4))
    ref = R.MaxViTBlock(64, 2, 4, 4)
    x = torch.randn(2, 64, 16, 16).to(memory_format=torch.channels_last)
    _assert_same_fwd_bwd(fast, ref, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yf, yr = fast(x), ref(x)
    assert (yf.float() - yr.float()).abs().max() < 0.05
