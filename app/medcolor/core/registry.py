"""One registry helper for every "name -> entry" table medcolor keeps (colorizers, data readers, architectures,
tasks, optimisers, losses, mixed-sample callbacks), in the manner of timm's model registry: entries are registered
where they are defined, looked up with a "did you mean" error, and listed for help texts and messages."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import UsageError, closest

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str, key: Callable[[str], str] = str):
        self.what, self._key, self._entries = what, key, {}

    def register(self, name: str, entry: T | None = None):
        """`REG.register(name, entry)`, or `@REG.register(name)` above a class or function."""
        def add(obj):
            if self._key(name) in self._entries:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._entries[self._key(name)] = obj
            return obj
        return add(entry) if entry is not None else add

    def get(self, name: str) -> T:
        key = self._key(name) if isinstance(name, str) else name
        if key not in self._entries:
            raise UsageError(self.unknown(name))
        return self._entries[key]

    def find(self, name) -> T | None:
        """The entry, or None for a name nobody registered (where the caller reports it its own way)."""
        return self._entries.get(self._key(name)) if isinstance(name, str) else None

    __getitem__ = get

    def unknown(self, name) -> str:
        """'unknown colorizer 'rainbow' (did you mean ...?); choose from a, b, c'"""
        key = self._key(name) if isinstance(name, str) else str(name)
        return f"unknown {self.what} {name!r}{closest(key, self._entries)}; choose from {self.choices(', ')}"

    def choices(self, sep: str = ", ") -> str:
        return sep.join(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self):
        return self._entries.items()

    def values(self):
        return self._entries.values()

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and self._key(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
