"""A torchvision-sized registry shared by models, datasets, measures and backends."""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterable, TypeVar

from persist.errors import ConfigError

T = TypeVar("T", bound=Callable)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the closest choice (difflib), or an empty string when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[T]):
    """Name -> factory mapping; unknown names raise a one-line error with the closest match and the choices."""

    def __init__(self, kind: str, error: type[Exception] = ConfigError) -> None:
        self.kind = kind
        self.error = error
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def wrap(fn: T) -> T:
            key = name or fn.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} '{key}' is already registered")
            self._items[key] = fn
            return fn

        return wrap

    def get(self, name: str) -> T:
        if name not in self._items:
            hint = did_you_mean(name, self._items)
            raise self.error(f"unknown {self.kind} '{name}'{hint}; choose one of: {', '.join(sorted(self._items))}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
