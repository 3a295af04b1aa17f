"""``--config FILE`` for the daemons: a YAML mapping whose keys are the long option names.

``spdkvirt agent --config /etc/spdkvirt/agent.yml`` reads keys such as ``node_id``, ``spdk_socket``,
``devices``; what is given on the command line wins over the file, the file over the built-in
defaults. Unknown keys and values of the wrong type are refused with a message naming the key, so a
typo in a deployed file stops the service instead of being ignored.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Option:
    """One option a config file may set: its key, the argparse attribute, its type and default."""

    key: str
    dest: str
    kind: type
    default: Any = None
    required: bool = False
    flag: str = ""
    choices: tuple[str, ...] = ()

    @property
    def shown(self) -> str:
        return self.flag or "--" + self.key.replace("_", "-")


class ConfigError(ValueError):
    """A config file or the options it gives are not usable."""


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML file of options (keys: long option names with _)")


def _typed(opt: Option, value: Any, where: str) -> Any:
    if opt.kind is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: {opt.key} must be a list of strings")
        return value
    if opt.kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {opt.key} must be true or false")
        return value
    if opt.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {opt.key} must be an integer")
        return value
    if opt.kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}: {opt.key} must be a number of seconds (0 or more)")
        return float(value)
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ConfigError(f"{where}: {opt.key} must be a string")
    return str(value)


def read_config(path: str | Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping of option names to values")
    return {str(k): v for k, v in data.items()}


def merge_config(args: argparse.Namespace, options: Sequence[Option]) -> argparse.Namespace:
    """Fill ``args`` from ``args.config`` (where the command line left an option unset, i.e. None),
    then from the defaults; ConfigError for unknown keys, bad types and missing required options."""
    by_key = {o.key: o for o in options}
    path = getattr(args, "config", None)
    if path:
        for key, value in read_config(path).items():
            opt = by_key.get(key)
            if opt is None:
                known = ", ".join(sorted(by_key))
                raise ConfigError(f"{path}: unknown option {key!r} (known: {known})")
            if getattr(args, opt.dest, None) in (None, []):
                setattr(args, opt.dest, _typed(opt, value, str(path)))
    for opt in options:
        value = getattr(args, opt.dest, None)
        if value is None:
            setattr(args, opt.dest, opt.default)
            value = opt.default
        if opt.required and value in (None, "", []):
            raise ConfigError(f"{opt.shown} is required (or {opt.key} in the --config file)")
        if opt.choices and value is not None and value not in opt.choices:
            raise ConfigError(f"{opt.key} must be one of {', '.join(opt.choices)}, not {value!r}")
    return args
