"""What every command shares: the command line as Hydra will read it, one-line errors, the Hydra entry.

* ``fix_overrides``: ``seeds=0-3,10`` works unquoted (Hydra would read the comma as a sweep and
  stop), so do values with characters Hydra's lexer refuses unquoted (non-ASCII, ``!#&;<=>^```),
  a leading ``~`` is the home directory (as a shell would expand it), ``run_dir=DIR`` (train) is
  ``hydra.run.dir=DIR``, and the launcher's configs (``accelerate=...``) get an answer instead of
  a composition error.
* ``check_composes``: the overrides compose and type-check, and no ``+``/``++`` key falls outside
  the command's schema (Hydra adds it, the typed config drops it: a silent typo).
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
from typing import Any

from maxvit_gan.config import CONFIG_MODULE, register_configs
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
    from hydra.errors import OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    text = str(err).strip() or type(err).__name__
    if isinstance(err, OverrideParseException):
        return _parse_error(err)
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


QUOTE_HINT = (
    "inside a list [...] or a dict {...}, quote each item with spaces, non-ASCII characters or any of !#&;<=>^`~ "
    "for Hydra, and the whole argument for the shell: 'classes=[\"étoile\",\"cœur\"]'"
)


def _parse_error(err) -> str:
    """Hydra's lexer/parser message (several lines, a caret, a link) as one line that says how to quote."""
    override = str(getattr(err, "override", "") or "").strip()
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "missing EQUAL" in str(err) and "=" not in override:
        return f"{override}: not key=value; a value with spaces needs the shell's quotes: 'run_dir=outputs/my run'"
    if first.startswith("LexerNoViableAltException"):
        return f"{override}: Hydra cannot read this value; {QUOTE_HINT}"
    return f"{override}: Hydra cannot parse this value ({first}): check its brackets and quotes; {QUOTE_HINT}"


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


def _lexer_refuses(value: str) -> bool:
    """Characters Hydra's override lexer refuses in an unquoted value (besides the structural ones)."""
    return any(c in "!#&;<=>^`~" or ord(c) > 127 for c in value)


def expand_home(value: str) -> str:
    """A leading ``~`` or ``~user`` (quoted or not) as the shell expands it: the home directory."""
    quote = value[0] if value[:1] in ("'", '"') and len(value) > 1 and value.endswith(value[0]) else ""
    inner = value[1:-1] if quote else value
    if not inner.startswith("~"):
        return value
    head, sep, rest = inner.partition("/")
    home = os.path.expanduser(head)
    return value if home == head else f"{quote}{home}{sep}{rest}{quote}"


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
        value = expand_home(value)
        if not (_STRUCTURED & set(value)) and (
            ("," in value and not sweep) or (_lexer_refuses(value) and not (sweep and "," in value))
        ):
            value = f"'{value}'"  # a string: seeds=0-3,10 (not a sweep), loss.diffaug=color,cutout, out=été.png
        out.append(f"{prefix}{key}={value}")
    if run_dir_alias is not None and sum(a.startswith("hydra.run.dir=") for a in out) > 1:
        raise UsageError("run_dir= and hydra.run.dir= both given: run_dir=DIR is short for hydra.run.dir=DIR")
    return out


def _compose_with_hydra(config_name: str, overrides: list[str]):
    """The composed config as a DictConfig, with Hydra's own node (``hydra.*``) popped off:
    ``(config, hydra_config)``; the search path's folders in ``hydra_config.searchpath``."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    with open_dict(cfg):
        hydra_cfg = cfg.pop("hydra")
    return cfg, hydra_cfg


def check_composes(config_name: str, overrides: list[str]):
    """Compose (and type-check) the config with the overrides, to report a typo, a missing group
    option or a missing value as one line before Hydra starts (Hydra prints several). A key that
    ``+``/``++`` added outside the command's schema is an error too (the typed config would drop
    it without a word). Returns Hydra's own config (``hydra.run.dir``, ...)."""
    from omegaconf import OmegaConf

    from maxvit_gan.cli.schema import added_key_problems

    cfg, hydra_cfg = _compose_with_hydra(config_name, overrides)
    problems = added_key_problems(config_name, cfg, overrides)
    if problems:
        raise UsageError("; ".join(problems))
    OmegaConf.to_object(cfg)  # the types of every value
    return hydra_cfg


def print_help(config_name: str, overrides: list[str]) -> None:
    """``--help``: every setting with its default (as composed with ``overrides``) and the comment of
    its dataclass field (cli/schema.py), grouped by section; Hydra's own help: ``--hydra-help``."""
    import shutil

    from omegaconf import OmegaConf

    from maxvit_gan.cli.schema import group_options, help_text
    from maxvit_gan.config import CONFIG_DIR

    cfg, hydra_cfg = _compose_with_hydra(config_name, overrides)
    groups = {}
    if config_name == "train":
        extra = [str(p).removeprefix("file://") for p in hydra_cfg.searchpath if not str(p).startswith("pkg://")]
        groups = group_options([str(CONFIG_DIR), *extra])
    shown = {"run_dir": OmegaConf.to_container(hydra_cfg.run, resolve=False)["dir"]} if config_name == "train" else {}
    width = min(max(shutil.get_terminal_size((110, 24)).columns, 80), 140)
    print(help_text(config_name, cfg, hydra_cfg.help.header, hydra_cfg.help.footer, groups, width, shown), end="")


def run_command(
    config_name: str,
    task: Callable,
    argv: list[str] | None = None,
    hints: dict[str, str] | None = None,
    exit_codes: dict[type[BaseException], int] | None = None,
    before_hydra: Callable[[], None] | None = None,
    check: Callable[[Any], None] | None = None,
) -> None:
    """Run ``task(dict_config)`` under ``@hydra.main`` with ``pkg://maxvit_gan.conf/<config_name>``.

    ``argv``: the overrides (default ``sys.argv[1:]``). ``check``: called with Hydra's own config
    (``hydra.run.dir``, ...) of the composed command line, its errors one line (train: the run
    directory). ``before_hydra``: called after the command line is final and before Hydra reads
    it (train: the other ranks' Hydra settings).
    """
    import hydra

    argv = list(sys.argv[1:] if argv is None else argv)
    with report_errors():
        argv = fix_overrides(argv, config_name, hints)
        if any(a in ("--help", "-h") for a in argv):
            print_help(config_name, [a for a in argv if not _is_flag(a)])
            return
        if not any(_is_flag(a) for a in argv):
            hydra_cfg = check_composes(config_name, argv)
            if check is not None:
                check(hydra_cfg)
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
