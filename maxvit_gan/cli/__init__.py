"""The command line: ``maxvit-gan <command> [key=value ...]`` (also ``python -m maxvit_gan``).

One module per command (``train``, ``sample``, ``evaluate``, ``prepare``, ``export``), each a
thin layer over the library: compose the Hydra config, call one function, print. The
scripts in ``scripts/`` call the same ``main`` functions.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": "train a GAN; several processes: accelerate launch [...] -m maxvit_gan train ...",
    "sample": "images from a generator: a run, a checkpoint, an exported folder, a .safetensors or a Hub id",
    "evaluate": "FID, KID, IS, precision/recall of a generator or of a folder of images",
    "prepare": "an image folder -> a dataset zip (ADM center crop, StyleGAN2-ADA format)",
    "export": "a trained generator -> a shareable folder with a model card; push_to_hub=USER/NAME uploads it",
}

USAGE = "usage: maxvit-gan <command> [key=value ...]\n\ncommands:\n" + "".join(
    f"  {name:<9} {text}\n" for name, text in COMMANDS.items()
) + (
    "\n`maxvit-gan <command> --help` shows the command's keys and defaults. Errors are one line;\n"
    "MAXVIT_GAN_DEBUG=1 shows the traceback. Docs: README.md of the project.\n"
)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        raise SystemExit(0 if argv else 2)
    if argv[0] == "--version":
        from maxvit_gan._version import __version__

        print(f"maxvit-gan {__version__}")
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"ERROR: unknown command {command!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        raise SystemExit(2)
    sys.argv = [f"maxvit-gan {command}", *rest]
    importlib.import_module(f"maxvit_gan.cli.{command}").main(rest)
