"""maxvit-gan: GANs with a MaxViT (Max-SA) generator in the HiT layout."""

__version__ = "0.1.0"
