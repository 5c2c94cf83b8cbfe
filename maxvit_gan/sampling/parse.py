"""Seeds and classes as the command line gives them: ``0-63``, ``0,5,7``, ``[1,2]``, ``0-3,10``, class names."""

from __future__ import annotations

import re

MAX_SEEDS = 10_000  # one call holds every image in memory: 10k at 256 px is 2 GB


def _parse_int_list(spec, key: str, names: list[str] | None = None, limit: int = MAX_SEEDS) -> list[int]:
    """``5``, ``"0-63"``, ``"0,5,7"``, ``"[1,2]"``, ``[0, "3-5"]``, ``"0-3,10"`` -> list of ints
    (at most ``limit``: counted before any list is built)."""
    hint = "expected e.g. 5, 0-63, 0,5,7, [0,5,7] or 0-3,10"
    if names:
        hint += f", or class names ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})"
    if isinstance(spec, bool) or spec is None:
        raise ValueError(f"{key}: cannot parse {spec!r} ({hint})")
    if isinstance(spec, int):
        parts = [spec]
    elif isinstance(spec, (list, tuple)):
        parts = list(spec)
    elif isinstance(spec, str):
        s = spec.strip()
        if s.startswith("[") and s.endswith("]"):
            s = s[1:-1]
        parts = [p.strip().strip("'\"") for p in s.split(",")]
    else:
        raise ValueError(f"{key}: cannot parse {spec!r} ({hint})")
    if len(parts) > limit:
        raise ValueError(f"{key}: {len(parts)} values in {str(spec)[:60]!r}; at most {limit} per call")
    out: list[int] = []
    for p in parts:
        if isinstance(p, bool):
            raise ValueError(f"{key}: cannot parse {spec!r} ({hint})")
        if isinstance(p, int):
            out.append(p)
            continue
        p = str(p).strip()
        if names and p in names:
            out.append(names.index(p))
        elif m := re.fullmatch(r"(\d+)\s*-\s*(\d+)", p):
            a, b = int(m.group(1)), int(m.group(2))
            if a > b:
                raise ValueError(f"{key}: empty range {p!r} in {spec!r} (start > end)")
            if len(out) + b - a + 1 > limit:
                raise ValueError(
                    f"{key}: {spec!r} selects more than {limit} values (at most {limit} per call: every image is "
                    "held in memory; split the range over several calls, or use maxvit-gan evaluate for metrics)"
                )
            out.extend(range(a, b + 1))
        elif re.fullmatch(r"[+-]?\d+", p):
            out.append(int(p))
        else:
            raise ValueError(f"{key}: cannot parse {spec!r} ({hint})")
    if not out:
        raise ValueError(f"{key}: {spec!r} selects nothing ({hint})")
    return out


def parse_seeds(spec) -> list[int]:
    """Seeds from ``5``, ``"0-63"``, ``"0,5,7"``, ``"[1,2]"``, ``[1, 2]`` or mixes like ``"0-3,10"``."""
    seeds = _parse_int_list(spec, "seeds")
    bad = [s for s in seeds if not 0 <= s < 2**63]
    if bad:
        raise ValueError(f"seeds: must be non-negative integers < 2**63, got {bad[:5]}")
    return seeds


def parse_classes(spec, num_classes: int, class_names: list[str] | None = None) -> list[int] | None:
    """Class indices for a model with ``num_classes`` classes; None (all classes) for ``spec=None``.
    Unconditional models: None, and an error if classes were asked for."""
    if num_classes <= 0:
        if spec is not None:
            raise ValueError(f"classes: the generator is unconditional; got classes={spec!r}")
        return None
    if spec is None:
        return list(range(num_classes))
    classes = _parse_int_list(spec, "classes", class_names)
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ValueError(
            f"classes: {bad[:5]} out of range: the generator has {num_classes} classes (0..{num_classes - 1})"
        )
    return classes
