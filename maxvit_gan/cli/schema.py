"""The settings of each command as the user sees them: their keys, types and one-line descriptions.

The schema of a command is its dataclass in :mod:`maxvit_gan.config` (``train``: RunConfig, ...).
The descriptions are the trailing ``# comments`` of the dataclass fields, read from the source
(``ast`` + ``tokenize``): the comment next to a field is its one documentation, for readers of the
code and for ``--help`` alike. ``model.generator.*`` / ``model.discriminator.*`` take the comments
of GeneratorConfig / DiscriminatorConfig, whose fields they mirror.

* :func:`added_key_problems`: keys a ``+``/``++`` override added outside the schema (Hydra adds
  them, the typed config drops them without a word).
* :func:`settings`: every key with its value in a composed config and its description (``--help``).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import io
import re
import sys
import tokenize
import types
import typing
from typing import Any

SCHEMAS = {  # command -> its dataclass in maxvit_gan.config
    "train": "RunConfig",
    "sample": "SampleConfig",
    "evaluate": "EvaluateConfig",
    "prepare": "PrepareConfig",
    "export": "ExportConfig",
}


def schema_of(command: str) -> type:
    import maxvit_gan.config as config

    return getattr(config, SCHEMAS[command])


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def is_open(tp: Any) -> bool:
    """A field that takes any keys (``dict[str, Any]``, ``Any``): ``+`` may add keys under it."""
    tp = _unwrap(tp)
    return tp is Any or tp is dict or typing.get_origin(tp) is dict


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _nested(tp: Any) -> type | None:
    tp = _unwrap(tp)
    return tp if dataclasses.is_dataclass(tp) else None


def all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every key of the schema, dotted (``train.kimg``), nested dataclasses expanded."""
    out = []
    for name, tp in field_types(cls).items():
        sub = _nested(tp)
        out += all_keys(sub, f"{prefix}{name}.") if sub else [f"{prefix}{name}"]
    return out


def open_keys(cls: type, prefix: str = "") -> list[str]:
    out = []
    for name, tp in field_types(cls).items():
        sub = _nested(tp)
        if sub:
            out += open_keys(sub, f"{prefix}{name}.")
        elif is_open(tp) and _unwrap(tp) is not Any:
            out.append(f"{prefix}{name}")
    return out


def _unknown_keys(node, cls: type, prefix: str = "") -> list[str]:
    from omegaconf import OmegaConf

    types_ = field_types(cls)
    out = []
    for key in node.keys():
        full = f"{prefix}{key}"
        if key not in types_:
            out.append(full)
            continue
        sub = _nested(types_[key])
        child = node._get_node(key)
        if sub and OmegaConf.is_dict(child) and not child._is_none() and not child._is_missing():
            out += _unknown_keys(child, sub, full + ".")
    return out


_ADDED = re.compile(r"^(?P<prefix>\+\+|\+)(?P<key>[^=~]+)=")


def added_key_problems(command: str, cfg, overrides: list[str]) -> list[str]:
    """One message per ``+``/``++`` override whose key is not a setting of ``command`` (and not
    under an open dict such as ``train.tracker_kwargs``), given the composed config ``cfg``."""
    cls = schema_of(command)
    unknown = _unknown_keys(cfg, cls)
    if not unknown:
        return []
    keys, opened = all_keys(cls), open_keys(cls)
    adds = [(m.group("prefix"), m.group("key"), arg) for arg in overrides if (m := _ADDED.match(arg))]
    problems: dict[str, str] = {}
    for full in unknown:
        prefix, key, arg = next(
            ((p, k, a) for p, k, a in adds if k == full or k.startswith(full + ".")), ("+", full, full)
        )
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        text = f"{arg}: {key} is not a setting of maxvit-gan {command}"
        text += f" (did you mean {close[0]}?)" if close else ""
        text += f"; {prefix} adds no new keys"
        text += f" except under {', '.join(opened)}" if opened else ""
        problems.setdefault(arg, text + f" (maxvit-gan {command} --help lists the settings)")
    return list(problems.values())


# ---------------------------------------------------------------------- descriptions (--help)

_COMMENT_SOURCE = {"GeneratorOverrides": "GeneratorConfig", "DiscriminatorOverrides": "DiscriminatorConfig"}


@functools.cache
def _module_comments(module_name: str) -> dict[str, dict[str, str]]:
    """``{class name: {field name: comment}}`` for the dataclasses of a module: the comment at
    the end of a field's line, else the comment lines just above it."""
    source = inspect.getsource(sys.modules[module_name])
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(tok.start[0])
    out: dict[str, dict[str, str]] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        fields = out.setdefault(node.name, {})
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            text = _clean(comments.get(stmt.end_lineno, ""))
            if not text:  # a block of comment lines right above the field
                above, line = [], stmt.lineno - 1
                while line in comments and line not in code_lines:
                    above.insert(0, _clean(comments[line]))
                    line -= 1
                text = " ".join(t for t in above if t)
            fields[stmt.target.id] = text
    return out


def _clean(comment: str) -> str:
    """``# type: ignore[x]  # the text`` -> ``the text``."""
    parts = [p.strip() for p in comment.split("#")]
    parts = [p for p in parts if p and not re.match(r"^(type:|noqa\b|fmt:|pragma\b)", p)]
    return " # ".join(parts)


def description(cls: type, name: str) -> str:
    """The comment of field ``name`` of dataclass ``cls`` ('' when it has none)."""
    source = _COMMENT_SOURCE.get(cls.__name__)
    if source:
        import maxvit_gan.models.config as model_config

        cls = getattr(model_config, source)
    return _module_comments(cls.__module__).get(cls.__name__, {}).get(name, "")


def settings(cfg, cls: type, prefix: str = ""):
    """``(section, key, value, description)`` for every key of the composed config ``cfg`` (a
    DictConfig of schema ``cls``): a dataclass's own keys in the schema's order, then its nested
    sections; ``section``: the dotted path of the dataclass the key belongs to ('' at the top)."""
    from omegaconf import OmegaConf

    nested = []
    for name, tp in field_types(cls).items():
        child = cfg._get_node(name) if name in cfg.keys() else None
        if child is None:
            continue
        sub = _nested(tp)
        if sub and OmegaConf.is_dict(child) and not child._is_none():
            nested.append((child, sub, f"{prefix}{name}."))
            continue
        value = OmegaConf.to_container(child, resolve=False) if OmegaConf.is_config(child) else child._value()
        text = description(cls, name)
        yield prefix[:-1], f"{prefix}{name}", value, ("required: " + text) if child._is_missing() else text
    for child, sub, sub_prefix in nested:
        yield from settings(child, sub, sub_prefix)


# ---------------------------------------------------------------------- --help

HIDDEN = {"train": {"overrides"}}  # set by the command itself, not by the user
KEY_COLUMN = 42


def _show(value: Any) -> str:
    """A value as it is typed on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple, dict)):
        import json

        return json.dumps(value, separators=(",", ":"), default=str).replace('"', "")
    return str(value) if str(value) != "" else "''"


def group_options(search_dirs: list[str]) -> dict[str, list[str]]:
    """``{group: [option, ...]}`` of the config folders (the packaged one first, then those of
    ``hydra.searchpath``): every subfolder but Hydra's own, its ``*.yaml`` files."""
    from pathlib import Path

    groups: dict[str, set[str]] = {}
    for folder in search_dirs:
        root = Path(folder)
        if not root.is_dir():
            continue
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ("hydra", "__pycache__")):
            options = {f.stem for f in sub.glob("*.yaml")}
            if options:
                groups.setdefault(sub.name, set()).update(options)
    return {g: sorted(o) for g, o in sorted(groups.items())}


def help_text(
    command: str, cfg, header: str, footer: str, groups: dict[str, list[str]], width: int = 110,
    shown: dict[str, Any] | None = None,
) -> str:  # fmt: skip
    """``maxvit-gan COMMAND --help``: the header, the groups (train), then every setting as
    ``key=default  description``, one section per config block, then the footer. ``shown``: values
    to show instead of the config's (train: ``run_dir``, which Hydra's ``hydra.run.dir`` sets)."""
    import textwrap

    cls = schema_of(command)
    lines = [header.rstrip(), ""]
    if groups:
        lines += ["== Groups (group=option) ==", *(f"{g}: {', '.join(o)}" for g, o in groups.items()), ""]
    lines += [
        "== Config (key=value: the default as composed from the config files and this command line) ==",
    ]
    if command == "train":
        lines.append("recipe=auto (experiment=auto, the default) picks the keys not given on the command line from the data.")
    section = None
    hidden = HIDDEN.get(command, set())
    for sec, key, value, text in settings(cfg, cls):
        if key in hidden:
            continue
        if sec != section:
            section = sec
            lines += ["", f"{sec}.*" + (f": {_section_text(cls, sec)}" if _section_text(cls, sec) else "") if sec else "top level:"]
        item = f"  {key}={_show((shown or {}).get(key, value))}"
        body = textwrap.wrap(text, max(width - KEY_COLUMN, 30)) or [""]
        if len(item) >= KEY_COLUMN - 1:
            lines.append(item)
            lines += [" " * KEY_COLUMN + b for b in body if b]
        else:
            lines.append(item.ljust(KEY_COLUMN) + body[0])
            lines += [" " * KEY_COLUMN + b for b in body[1:]]
    lines += ["", footer.rstrip()]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _section_text(cls: type, section: str) -> str:
    """The comment of the field that holds the section (``train`` -> RunConfig.train's comment)."""
    *parents, name = section.split(".")
    owner = cls
    for part in parents:
        owner = _nested(field_types(owner)[part])
    return description(owner, name)
