"""``python -m maxvit_gan <command> ...`` and ``accelerate launch -m maxvit_gan train ...``."""

from maxvit_gan.cli import main

main()
