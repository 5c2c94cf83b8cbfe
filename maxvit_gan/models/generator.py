"""Generator: the HiT layout with MaxViT blocks.

    z ──► Linear ──► 8x8 x C0 map (+ position embedding)
    z ──► Linear ──► 16 latent tokens (+ position embedding) [+ class-embedding tokens]
    for each stage (8, 16, ..., R px):
        [pixel shuffle 2x + 1x1 conv to the stage width]  (all but the first stage)
        + learned absolute position embedding
        cross-attention: every pixel attends to the latent tokens (the latent modulates each stage)
        [+ FFN]                                                        (cross_attn_mlp, HiT)
        N x MaxViTBlock (MBConv -> block attention -> grid attention)   stages < 128 px
        N x MBConv | N x PixelMLP                                      stages >= 128 px (no attention;
                                                                       highres_block: mbconv | mlp, HiT)
        skip-to-RGB at the attention-free stages and the stage before them, earlier RGB upsampled
        bilinearly and added (rgb_skip=bilinear); or only at the attention-free stages, nearest (hit)
    -> (B, 3, R, R), in the [-1, 1] scale; output=linear (default): not clamped (clamp only when
       saving images); clamp: clamped to [-1, 1] (no gradient beyond); tanh
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from maxvit_gan.models.config import GeneratorConfig
from maxvit_gan.models.pretrained import PretrainedMixin
from maxvit_gan.nn import CrossAttention, FeedForward, LayerNorm2d, MaxViTBlock, MBConv, ModulatedResBlock

ARCHS = ("maxvit", "mbconv", "conv")
UPSAMPLERS = ("pixel_shuffle", "icnr", "bilinear")

HIGHRES_BLOCKS = ("mbconv", "mlp")
RGB_SKIPS = ("bilinear", "hit")
OUTPUTS = ("linear", "clamp", "tanh")


class PixelMLP(FeedForward):
    """Pre-norm MLP with residual applied to every pixel of a (B, C, H, W) map on its own: no
    spatial mixing. HiT's attention-free ("implicit neural function") stage block, and the FFN
    HiT puts after each cross-attention."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ToRGB(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm = LayerNorm2d(channels)
        self.conv = nn.Conv2d(channels, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x))


class Upsample(nn.Module):
    """2x upsampling to the next width.

    ``pixel_shuffle`` (HiT): shuffle first (C -> C/4 channels at twice the side), then a 1x1
    conv. The four pixels of each 2x2 cell come from four different input channels, which
    at initialisation have unrelated statistics: a 2x2 checkerboard the network must unlearn.
    ``icnr``: a 1x1 conv to 4x the next width, then the shuffle, with the conv initialised
    so that the four sub-pixels of a cell are equal (ICNR, Aitken et al. 2017): it starts
    as nearest-neighbour upsampling, but each sub-pixel keeps its own weights and bias, and
    training can still grow a fixed 2x2 pattern (measured: benchmarks/RESULTS.md).
    ``bilinear``: a 1x1 conv to the next width, then bilinear 2x upsampling (the two commute;
    the conv runs at the low resolution). Every output pixel is made the same way: no
    sub-pixel position has parameters of its own in the upsampler (a stage's learned position
    embedding still can hold a fixed pattern; benchmarks/RESULTS.md measures what remains).
    """

    def __init__(self, in_channels: int, out_channels: int, mode: str = "pixel_shuffle"):
        super().__init__()
        self.mode = mode
        if mode == "pixel_shuffle":
            if in_channels % 4:
                raise ValueError(f"pixel shuffle needs a width divisible by 4, got {in_channels}")
            self.conv = nn.Conv2d(in_channels // 4, out_channels, 1)
        elif mode == "bilinear":
            self.conv = nn.Conv2d(in_channels, out_channels, 1)
        else:
            self.conv = nn.Conv2d(in_channels, 4 * out_channels, 1)
            one = nn.Conv2d(in_channels, out_channels, 1)  # default init of the sub-pixel conv
            with torch.no_grad():  # pixel_shuffle reads channel 4 o + k as sub-pixel k of channel o
                self.conv.weight.copy_(one.weight.repeat_interleave(4, dim=0))
                self.conv.bias.copy_(one.bias.repeat_interleave(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "pixel_shuffle":
            return self.conv(F.pixel_shuffle(x, 2))
        if self.mode == "bilinear":
            return F.interpolate(self.conv(x), scale_factor=2.0, mode="bilinear", align_corners=False)
        return F.pixel_shuffle(self.conv(x), 2)


class Stage(nn.Module):
    def __init__(self, cfg: GeneratorConfig, index: int, side: int, in_channels: int | None, latent_dim: int, to_rgb: bool):
        super().__init__()
        dim = cfg.channels[index]
        heads = cfg.num_heads[index] if cfg.num_heads else max(1, dim // cfg.head_dim)
        window, grid = cfg.window_sizes[index], cfg.grid_sizes[index]
        self.side = side
        self.arch = cfg.arch
        self.upsample = Upsample(in_channels, dim, cfg.upsample) if in_channels is not None else None
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, side, side))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        depth = cfg.depths[index]
        self.cross_mlp = None
        if cfg.arch == "conv":  # the latent modulates each block through FiLM instead of cross-attention
            self.cross_attn = None
            blocks = [ModulatedResBlock(dim, latent_dim) for _ in range(depth)]
        else:
            self.cross_attn = CrossAttention(dim, latent_dim, heads)
            self.cross_mlp = PixelMLP(dim, cfg.mlp_ratio) if cfg.cross_attn_mlp else None
            if window > 0 and cfg.arch == "maxvit":
                blocks = [MaxViTBlock(dim, heads, window, grid, cfg.mlp_ratio, cfg.mbconv_expand) for _ in range(depth)]
            elif window == 0 and cfg.highres_block == "mlp":
                blocks = [PixelMLP(dim, cfg.mlp_ratio) for _ in range(depth)]
            else:
                blocks = [MBConv(dim, dim, expand=cfg.mbconv_expand) for _ in range(depth)]
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = ToRGB(dim) if to_rgb else None

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        if self.upsample is not None:
            x = self.upsample(x)
        x = x + self.pos_embed
        if self.cross_attn is None:
            w = latents.mean(1)  # (B, latent_dim): the pooled latent (and class) tokens
            for block in self.blocks:
                x = block(x, w)
            return x
        x = self.cross_attn(x, latents)
        if self.cross_mlp is not None:
            x = self.cross_mlp(x)
        for block in self.blocks:
            x = block(x)
        return x


class Generator(PretrainedMixin, nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        n = len(cfg.channels or [])
        if n == 0 or any(len(getattr(cfg, k) or []) != n for k in ("depths", "window_sizes", "grid_sizes")):
            raise ValueError(
                "GeneratorConfig: channels, depths, window_sizes and grid_sizes must be lists of one entry per "
                f"stage (8 px .. resolution); got {cfg}"
            )
        if cfg.arch not in ARCHS:
            raise ValueError(f"model.generator.arch: unknown {cfg.arch!r} (expected one of {', '.join(ARCHS)})")
        if cfg.upsample not in UPSAMPLERS:
            raise ValueError(
                f"model.generator.upsample: unknown {cfg.upsample!r} (expected one of {', '.join(UPSAMPLERS)})"
            )
        if 8 * 2 ** (n - 1) != cfg.resolution:
            raise ValueError(f"GeneratorConfig: {n} stages give {8 * 2 ** (n - 1)} px, but resolution={cfg.resolution}")
        _check_hit_options(cfg, n)
        self.config = cfg
        self.resolution = cfg.resolution
        self.z_dim = cfg.z_dim
        self.num_classes = cfg.num_classes
        c0 = cfg.channels[0]
        self.latent_dim = c0
        self.input = nn.Linear(cfg.z_dim, 64 * c0)
        self.latent = nn.Linear(cfg.z_dim, cfg.num_latent_tokens * c0)
        self.latent_pos = nn.Parameter(torch.zeros(1, cfg.num_latent_tokens, c0))
        nn.init.trunc_normal_(self.latent_pos, std=0.02)
        self.class_embed = (
            nn.Embedding(cfg.num_classes, cfg.class_embed_tokens * c0) if cfg.num_classes > 0 else None
        )
        # the class also shifts the 8x8 input map (as a conditional bias): a direct, early signal
        self.class_input = nn.Embedding(cfg.num_classes, 64 * c0) if cfg.num_classes > 0 else None
        if self.class_input is not None:
            nn.init.normal_(self.class_input.weight, std=0.5)
        no_attn = [w == 0 for w in cfg.window_sizes]
        stages = []
        for i in range(n):
            to_rgb = i == n - 1 or no_attn[i] or (cfg.rgb_skip == "bilinear" and no_attn[i + 1])
            stages.append(Stage(cfg, i, 8 * 2**i, cfg.channels[i - 1] if i else None, c0, to_rgb))
        self.stages = nn.ModuleList(stages)

    def forward(
        self, z: torch.Tensor, labels: torch.Tensor | None = None, truncation_psi: float = 1.0
    ) -> torch.Tensor:
        """z: (B, z_dim); labels: (B,) int64 class indices (conditional models) -> (B, 3, R, R).

        ``truncation_psi`` < 1 is the latent-mean truncation trick: the normalised latent is
        scaled by psi, i.e. moved towards its mean (0). The layers that read it are affine, so
        this interpolates the 8x8 input map and the latent tokens towards their average over z
        (the class tokens are untouched). psi = 0 gives the same image for every z (per class).
        """
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"Generator: z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        if self.class_embed is not None and labels is None:
            raise ValueError(f"Generator: conditional model ({self.num_classes} classes) needs labels")
        b = z.shape[0]
        z = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)  # 2nd-moment normalisation
        if truncation_psi != 1.0:
            z = z * truncation_psi
        x = self.input(z).view(b, self.latent_dim, 8, 8)
        latents = self.latent(z).view(b, -1, self.latent_dim) + self.latent_pos
        if self.class_embed is not None:
            latents = torch.cat([latents, self.class_embed(labels).view(b, -1, self.latent_dim)], dim=1)
            x = x + self.class_input(labels).view(b, self.latent_dim, 8, 8)
        rgb = None
        up = dict(mode="nearest") if self.config.rgb_skip == "hit" else dict(mode="bilinear", align_corners=False)
        for stage in self.stages:
            x = stage(x, latents)
            if stage.to_rgb is not None:
                out = stage.to_rgb(x)
                rgb = out if rgb is None else out + F.interpolate(rgb, scale_factor=2.0, **up)
        if self.config.output == "clamp":
            return rgb.clamp(-1.0, 1.0)
        if self.config.output == "tanh":
            return torch.tanh(rgb)
        return rgb


def _check_hit_options(cfg: GeneratorConfig, n: int) -> None:
    """The fields HiT's options added to GeneratorConfig: known values, one head count per stage."""
    if cfg.num_heads is not None:
        if len(cfg.num_heads) != n:
            raise ValueError(f"GeneratorConfig.num_heads: one entry per stage ({n}), got {cfg.num_heads}")
        for dim, heads in zip(cfg.channels, cfg.num_heads):
            if heads < 1 or dim % heads:
                raise ValueError(f"GeneratorConfig.num_heads: {heads} heads do not divide width {dim}")
    if cfg.highres_block not in HIGHRES_BLOCKS:
        raise ValueError(f"GeneratorConfig.highres_block: {cfg.highres_block!r}, expected one of {HIGHRES_BLOCKS}")
    if cfg.rgb_skip not in RGB_SKIPS:
        raise ValueError(f"GeneratorConfig.rgb_skip: {cfg.rgb_skip!r}, expected one of {RGB_SKIPS}")
    if cfg.output not in OUTPUTS:
        raise ValueError(f"model.generator.output: {cfg.output!r}, expected one of {OUTPUTS}")
