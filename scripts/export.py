"""Export a trained generator to a shareable folder with a model card, optionally pushed to the Hub
(the same as `maxvit-gan export`).

    python scripts/export.py run=outputs/<run> out=exports/shapes32
    python scripts/export.py run=outputs/<run> push_to_hub=USER/maxvit-gan-shapes32

Keys and defaults: maxvit_gan.config.ExportConfig (`--help`); the logic: maxvit_gan.export.export_generator.
"""

from maxvit_gan.cli.export import main

if __name__ == "__main__":
    main()
