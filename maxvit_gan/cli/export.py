"""``maxvit-gan export``: a trained generator -> a shareable folder with a model card; optionally pushed to the Hub.

    maxvit-gan export run=outputs/<run> out=exports/shapes32
    maxvit-gan export run=outputs/<run> checkpoint=latest push_to_hub=USER/maxvit-gan-shapes32 private=true

Keys and defaults: maxvit_gan.config.ExportConfig; the logic: maxvit_gan.export.export_generator.
"""

from __future__ import annotations

from maxvit_gan.cli.common import run_command


def task(dcfg) -> None:
    from omegaconf import OmegaConf

    from maxvit_gan.export import export_generator

    result = export_generator(OmegaConf.to_object(dcfg))
    if result["folder"] is not None:
        print(f"wrote {result['folder']}")
    if result["url"] is not None:
        print(f"pushed to {result['url']}")


def main(argv: list[str] | None = None) -> None:
    run_command("export", task, argv)


if __name__ == "__main__":
    main()
