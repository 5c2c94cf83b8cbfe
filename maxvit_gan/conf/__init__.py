"""The Hydra configs, shipped inside the package (``pkg://maxvit_gan.conf``).

    train.yaml sample.yaml evaluate.yaml prepare.yaml export.yaml   one per command
    model/ data/ experiment/                                          train's groups
    hydra/                                                            logging and --help of the commands

Every node is validated against the dataclasses in :mod:`maxvit_gan.config`. Add your own
configs without copying these: ``hydra.searchpath=[file:///path/to/my_conf]`` (then e.g.
``experiment=mine`` for ``my_conf/experiment/mine.yaml``).
"""
