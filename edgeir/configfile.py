"""Config files (a model's JSON, a recipe's or device profile's YAML) read as untrusted input: size-limited, and
every way of being unreadable is one line naming the file, raised as the caller's error class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeir.errors import ConfigError, EdgeirError

# Configs are a few kB; this keeps a hostile one from being read into memory whole.
MAX_BYTES = 1 << 20
# A recipe holds a few hundred values; YAML aliases let a file of a few hundred bytes stand for billions, which
# whatever walks the config (validation) would then expand.
MAX_VALUES = 100_000


def read_text(path: Path, what: str, error: type[EdgeirError] = ConfigError) -> str:
    """A missing file is an error too: callers that can say more about it check first."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise error(f"{path}: {size:,} bytes, over the {MAX_BYTES:,} limit for a {what}")
        return path.read_text()
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise error(f"{path}: not a text file ({type(e).__name__})") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None


def read_json(path: Path, what: str, error: type[EdgeirError] = ConfigError) -> Any:
    text = read_text(path, what, error)
    try:
        return json.loads(text)
    except RecursionError:  # the parser recurses once per level of nesting
        raise error(f"{path}: corrupt JSON (nested too deeply)") from None
    except json.JSONDecodeError as e:
        raise error(f"{path}: corrupt JSON ({e})") from None


def read_yaml(path: Path, what: str, error: type[EdgeirError] = ConfigError) -> Any:
    import yaml

    text = read_text(path, what, error)
    try:
        data = yaml.safe_load(text)
    except RecursionError:  # PyYAML builds nested collections recursively
        raise error(f"{path}: nested too deeply to be a {what}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(f"{path}: invalid YAML{where}: {problem}") from None
    problem = _expansion_problem(data)
    if problem:
        raise error(f"{path}: {problem}")
    return data


def _expansion_problem(data: Any) -> str | None:
    """Why ``data``, counted with every alias expanded, is not a config: it refers to itself, or holds more than
    ``MAX_VALUES`` values. Linear in its distinct collections (each shared one is sized once)."""
    if not isinstance(data, dict | list):
        return None
    sizes: dict[int, int] = {}
    open_ids: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, closing = stack.pop()
        children = [c for c in (node.values() if isinstance(node, dict) else node) if isinstance(c, dict | list)]
        if closing:
            open_ids.discard(id(node))
            scalars = len(node) - len(children)
            sizes[id(node)] = 1 + scalars + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] > MAX_VALUES:
                return f"expands to more than {MAX_VALUES:,} values (YAML aliases); not a config"
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_ids:
            return "refers to itself (a recursive YAML alias)"
        open_ids.add(id(node))
        stack.append((node, True))
        stack += [(c, False) for c in children if id(c) not in sizes]
    return None
