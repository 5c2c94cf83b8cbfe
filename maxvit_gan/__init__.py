"""maxvit-gan: GANs with a MaxViT (Max-SA) generator in the HiT layout."""

__version__ = "0.1.0"

from maxvit_gan.models import Generator, load_generator  # noqa: E402

__all__ = ["Generator", "load_generator"]
