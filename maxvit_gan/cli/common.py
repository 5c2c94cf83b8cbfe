"""What every command shares: the command line as Hydra will read it, one-line errors, the Hydra entry.

* ``fix_overrides``: ``seeds=0-3,10`` works unquoted (Hydra would read the comma as a sweep and
  stop), ``run_dir=DIR`` (train) is ``hydra.run.dir=DIR``, and the launcher's configs
  (``accelerate=...``) get an answer instead of a composition error.
* ``report_errors``: a user error (a bad value, a missing file, no Inception weights offline, a
  missing optional package, a config that does not compose) becomes one ``ERROR: ...`` message on
  stderr and exit status 2; the traceback only with ``MAXVIT_GAN_DEBUG=1``.
* ``run_command``: checks that the overrides compose (so Hydra's own multi-line errors never
  show), then runs the command's task under ``@hydra.main`` with the configs of
  ``pkg://maxvit_gan.conf``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator

from maxvit_gan.config import CONFIG_MODULE, compose, register_configs
from maxvit_gan.launch import rank_from_env

DEBUG_ENV = "MAXVIT_GAN_DEBUG"
EXIT_USER_ERROR = 2


class UsageError(ValueError):
    """A command line that cannot work; the message says what to type instead."""


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no")


def _user_error_types() -> tuple[type[BaseException], ...]:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from maxvit_gan.metrics.features import InceptionWeightsError

    return (ValueError, OSError, InceptionWeightsError, ModuleNotFoundError, OmegaConfBaseException, HydraException)


def format_error(err: BaseException) -> str:
    """The message of a user error, without the internals Hydra and OmegaConf append."""
    from omegaconf.errors import OmegaConfBaseException

    text = str(err).strip() or type(err).__name__
    if isinstance(err, OmegaConfBaseException) or type(err).__module__.startswith("hydra"):
        if isinstance(err.__cause__, OmegaConfBaseException):  # Hydra wraps OmegaConf's precise message
            return format_error(err.__cause__)
        text = text.split("Config search path:")[0]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        keep = [ln for ln in lines if not ln.startswith(("full_key:", "object_type=", "reference_type="))]
        full_key = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("full_key:")), "")
        text = " ".join(keep) or text
        from omegaconf.errors import MissingMandatoryValue

        if isinstance(err, MissingMandatoryValue) and full_key:
            return f"{full_key}: required, give {full_key}=..."
        if full_key and not text.startswith(full_key):
            text = f"{full_key}: {text}"
    if isinstance(err, ModuleNotFoundError) and err.name and "pip install" not in text:
        text += f" (pip install {err.name.split('.')[0].replace('_', '-')})"
    return text


@contextlib.contextmanager
def report_errors(exit_codes: dict[type[BaseException], int] | None = None) -> Iterator[None]:
    """Turn user errors into ``ERROR: <message>`` on stderr (rank 0 only) and a non-zero exit.

    ``exit_codes`` maps further exception types to their own exit status (e.g. a non-finite
    loss: 3); everything else is a bug and keeps its traceback. ``MAXVIT_GAN_DEBUG=1``: re-raise.
    """
    extra = dict(exit_codes or {})
    try:
        yield
    except tuple(extra) + _user_error_types() as err:
        if debug_enabled():
            raise
        code = next((c for t, c in extra.items() if isinstance(err, t)), EXIT_USER_ERROR)
        if rank_from_env() == 0:
            print(f"ERROR: {format_error(err)}", file=sys.stderr, flush=True)
        raise SystemExit(code) from None


# ---------------------------------------------------------------------- the command line

_OVERRIDE = re.compile(r"^(?P<prefix>~|\+\+|\+)?(?P<key>[A-Za-z_][\w./@-]*)=(?P<value>.*)$", re.S)
_STRUCTURED = set("[]{}()'\"$\\")

LAUNCHER_HINT = (
    "the files in launchers/ configure the launcher, not the job: "
    "accelerate launch --config_file launchers/{name}.yaml scripts/train_gan.py ... "
    "(or run `accelerate config` once)"
)


def _is_flag(arg: str) -> bool:
    return arg.startswith("-")


def multirun(argv: list[str]) -> bool:
    return any(a in ("-m", "--multirun") for a in argv)


def fix_overrides(argv: list[str], command: str, hints: dict[str, str] | None = None) -> list[str]:
    """The command line as Hydra should read it (see the module docstring). Raises UsageError."""
    out: list[str] = []
    sweep = multirun(argv)
    run_dir_alias = None
    for arg in argv:
        m = None if _is_flag(arg) else _OVERRIDE.match(arg)
        if m is None:
            out.append(arg)
            continue
        prefix, key, value = m.group("prefix") or "", m.group("key"), m.group("value")
        if key == "accelerate" or key.startswith("accelerate/"):
            raise UsageError(f"{arg}: " + LAUNCHER_HINT.format(name=value or "single_gpu"))
        for bad, hint in (hints or {}).items():
            if key == bad or key.startswith(bad + "."):
                raise UsageError(f"{key}: {hint}")
        if command == "train" and key == "run_dir" and not prefix:
            run_dir_alias = value
            key = "hydra.run.dir"
        if not sweep and "," in value and not (_STRUCTURED & set(value)):
            value = f"'{value}'"  # a string, not a sweep: seeds=0-3,10, loss.diffaug=color,cutout
        out.append(f"{prefix}{key}={value}")
    if run_dir_alias is not None and sum(a.startswith("hydra.run.dir=") for a in out) > 1:
        raise UsageError("run_dir= and hydra.run.dir= both given: run_dir=DIR is short for hydra.run.dir=DIR")
    return out


def check_composes(config_name: str, overrides: list[str]) -> None:
    """Compose (and type-check) the config with the overrides, to report a typo, a missing group
    option or a missing value as one line before Hydra starts (Hydra prints several)."""
    compose(config_name, overrides)


def run_command(
    config_name: str,
    task: Callable,
    argv: list[str] | None = None,
    hints: dict[str, str] | None = None,
    exit_codes: dict[type[BaseException], int] | None = None,
    before_hydra: Callable[[], None] | None = None,
) -> None:
    """Run ``task(dict_config)`` under ``@hydra.main`` with ``pkg://maxvit_gan.conf/<config_name>``.

    ``argv``: the overrides (default ``sys.argv[1:]``). ``before_hydra``: called after the
    command line is final and before Hydra reads it (train: the other ranks' Hydra settings).
    """
    import hydra

    argv = list(sys.argv[1:] if argv is None else argv)
    with report_errors():
        argv = fix_overrides(argv, config_name, hints)
        if not any(_is_flag(a) for a in argv):
            check_composes(config_name, argv)
    sys.argv = [sys.argv[0] if sys.argv else f"maxvit-gan {config_name}", *argv]
    if before_hydra is not None:
        before_hydra()
    register_configs()

    def guarded(dcfg) -> None:
        with report_errors(exit_codes):
            task(dcfg)

    guarded.__module__ = task.__module__  # Hydra names the job after the task's module
    guarded.__name__ = task.__name__
    hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name=config_name, version_base="1.3")(guarded)()
