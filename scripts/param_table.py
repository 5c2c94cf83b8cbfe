"""Print the parameter-count table (presets x resolutions, next to HiT-B) as markdown.

    python scripts/param_table.py                # print
    python scripts/param_table.py --readme       # also rewrite the table in README.md
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from maxvit_gan.models import Discriminator, Generator, discriminator_preset, generator_preset

# HiT-B from its official code with ImageNet's 256-d latent (docs/hit.md; 46.22M at 256 px is
# the 512-d latent of its face datasets): G at 128 / 256 px, D at 128 px
HIT_B = {128: 32.87, 256: 35.73, "D": 23.88}
RESOLUTIONS = (32, 64, 128, 256)
PRESETS = ("tiny", "s", "b", "hit_b", "l")
BEGIN, END = "<!-- param-table:begin -->", "<!-- param-table:end -->"


def count(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def table() -> str:
    rows = ["| preset | " + " | ".join(f"G @ {r} px" for r in RESOLUTIONS) + " | D @ 128 px |", "|---" * 6 + "|"]
    for name in PRESETS:
        g = [f"{count(Generator(generator_preset(name, r))):.2f}M" for r in RESOLUTIONS]
        d = f"{count(Discriminator(discriminator_preset(name, 128))):.2f}M"
        rows.append(f"| {name} | " + " | ".join(g) + f" | {d} |")
    rows.append(
        "| HiT-B (official code, latent 256) | - | - | "
        + " | ".join(f"{HIT_B[r]:.2f}M" for r in (128, 256))
        + f" | {HIT_B['D']:.2f}M |"
    )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", action="store_true", help="rewrite the table between the markers in README.md")
    args = ap.parse_args()
    text = table()
    print(text)
    if args.readme:
        readme = Path(__file__).resolve().parents[1] / "README.md"
        src = readme.read_text()
        if BEGIN not in src:
            raise SystemExit(f"README.md has no {BEGIN} ... {END} markers")
        src = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), BEGIN + "\n" + text + "\n" + END, src, flags=re.S)
        readme.write_text(src)


if __name__ == "__main__":
    main()
