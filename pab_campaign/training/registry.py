"""Name → builder tables (data sets, models, norms, optimisers, schedules, probes), one style for all.

A config names what to build (`model.name: mlp`); the module that builds it registers each
builder under its name, and `get` either returns it or raises `UnknownName`, a `ConfigError` that
names the key and the choices, so a run refuses it (exit 2) before anything is written.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from pab_campaign.errors import ConfigError, did_you_mean

T = TypeVar("T")


class UnknownName(ConfigError):
    """A config names something no registry entry builds; the message lists the choices."""


class Registry(Generic[T]):
    """Entries of one kind (`kind`, e.g. "model") chosen by the config key `key` (e.g. "model.name")."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Store `entry` under `name`; a second entry of one name is a bug (ValueError)."""
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`: `@MODELS.register("mlp")` above the builder."""
        return lambda entry: self.add(name, entry)

    def get(self, name: str) -> T:
        """The entry registered as `name`; `UnknownName` naming the key and the choices otherwise."""
        if name not in self._entries:
            raise UnknownName(f"unknown {self.kind} '{name}' in {self.key}{did_you_mean(name, self._entries)}; "
                              f"choose from {self.names()}")
        return self._entries[name]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
