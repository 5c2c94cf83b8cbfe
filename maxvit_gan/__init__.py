"""maxvit-gan: GANs with a MaxViT (Max-SA) generator in the HiT layout.

``maxvit_gan.Generator`` and ``maxvit_gan.load_generator`` are loaded on first use, so that
importing a light subpackage (``maxvit_gan.data``, ``maxvit_gan.metrics``) does not import
the models.
"""

from maxvit_gan._version import __version__

__all__ = ["Generator", "__version__", "load_generator"]


def __getattr__(name: str):
    if name == "Generator":
        from maxvit_gan.models.generator import Generator

        return Generator
    if name == "load_generator":
        from maxvit_gan.loading import load_generator

        return load_generator
    raise AttributeError(f"module 'maxvit_gan' has no attribute {name!r}")
