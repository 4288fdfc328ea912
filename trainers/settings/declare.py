"""How a setting is declared: its default, help, allowed values and command-line form.

The concern modules of this package declare every setting of a run with :func:`setting`;
the flags, the config-file loader and the documentation are derived from these
declarations. A setting whose values stand for kinds of things takes them from a
:class:`~enum.StrEnum` (``choices=Strategy``): the value is then that enum's member.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from graphblocks import GraphblocksError


class ConfigError(GraphblocksError):
    """A setting or a config file that cannot be used."""


#: the commands of ``graphblocks-train`` that run something
COMMANDS = ("run", "sweep", "rltune")
EVERY_COMMAND = COMMANDS
RUN_ONLY = ("run",)
RLTUNE_ONLY = ("rltune",)
SWEEPS = ("run", "sweep")


@dataclass(frozen=True)
class SettingInfo:
    """What a setting's declaration says besides its default (a field's metadata)."""

    help: str
    choices: tuple[str, ...] | None = None
    #: the enum whose members the values are (its values are then ``choices``)
    enum: type[StrEnum] | None = None
    commands: tuple[str, ...] = EVERY_COMMAND
    #: the command-line syntax: "value" (one value), "multiple" (a repeatable flag) or
    #: "flag" (``--x/--no-x``)
    syntax: str = "value"
    #: turns what the command line gives (a string, or a tuple of them) into the value
    parse: Callable[[Any], Any] | None = None
    #: how the default is shown when not by its value
    shown_default: str | None = None
    metavar: str | None = None
    #: the flag's name when not ``--<name-with-dashes>``
    flag: str | None = None
    #: more flag names per command, e.g. ``{"rltune": ("--epochs-per-episode",)}``
    aliases: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def parse_shares(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise ConfigError(f"bad --split {text!r}", "write three shares, e.g. 0.7,0.2,0.1") from None


def parse_floats(text: str) -> list[float]:
    """``0,0.5,1`` → ``[0.0, 0.5, 1.0]``."""
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"bad list of numbers {text!r}", "write numbers separated by commas"
        ) from None


def parse_names(text: str | Sequence[str]) -> list[str]:
    """``pool,norm`` (or a list of names) → ``["pool", "norm"]``."""
    names = text.split(",") if isinstance(text, str) else list(text)
    return [n.strip() for n in names if n.strip()]


def parse_input_size(text: str) -> list[int]:
    import graphblocks

    return list(graphblocks.parse_input_size(text))


def parse_model_args(pairs: tuple[str, ...]) -> dict[str, Any]:
    import graphblocks

    return graphblocks.parse_model_args(pairs)


def setting(default: Any = None, help: str = "", **info: Any) -> Any:
    """A settings field: its default (a list or dict is copied per instance) and its
    :class:`SettingInfo`; ``choices`` may be a :class:`~enum.StrEnum` class."""
    choices = info.get("choices")
    if isinstance(choices, type) and issubclass(choices, StrEnum):
        info.update(enum=choices, choices=tuple(m.value for m in choices))
    metadata = {"setting": SettingInfo(help, **info)}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Setting:
    """One declared setting: its field name, default and :class:`SettingInfo`."""

    name: str
    default: Any
    info: SettingInfo

    @property
    def flag(self) -> str:
        return self.info.flag or "--" + self.name.replace("_", "-")

    def shown_default(self) -> str:
        """The default as people read it: ``0.7,0.2,0.1``, ``on``, ``1e-3``."""
        if self.info.shown_default is not None:
            return self.info.shown_default
        if isinstance(self.default, StrEnum):
            return self.default.value
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, list):
            return ",".join(str(v) for v in self.default)
        if isinstance(self.default, float) and 0 < abs(self.default) < 0.01:
            return f"{self.default:g}".replace("e-0", "e-")
        return str(self.default)


def check_choice(spec: Setting, value: Any) -> Any:
    """``value`` if it is one of ``spec``'s choices (as the enum's member when it has
    one), else a one-line :class:`ConfigError`; None passes (a preset's default)."""
    if spec.info.choices is None or value is None:
        return value
    if value not in spec.info.choices:
        raise ConfigError(
            f"bad {spec.name} {value!r}", f"choose from {', '.join(spec.info.choices)}"
        )
    return spec.info.enum(value) if spec.info.enum is not None else value
