"""Named registries of components (generators, discriminators, methods, datasets, ...).

Presets and users name components by string; a new component is one decorated function or class,
with no edit to any core file (the pattern timm uses for models)::

    from pairgan.registry import register

    @register("generator", "my_unet")
    def my_unet(input_nc: int, output_nc: int, **kw) -> nn.Module: ...
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

T = TypeVar("T")

_REGISTRIES: dict[str, dict[str, Any]] = {}


def register(kind: str, name: str) -> Callable[[T], T]:
    """Decorator: register ``obj`` under ``kind``/``name``. Registering a name twice is an error."""

    def deco(obj: T) -> T:
        table = _REGISTRIES.setdefault(kind, {})
        if name in table and table[name] is not obj:
            raise ValueError(f"{kind} {name!r} is already registered ({table[name]!r})")
        table[name] = obj
        return obj

    return deco


def lookup(kind: str, name: str) -> Any:
    """Return the component registered as ``kind``/``name``; the error lists what exists."""
    _import_builtin_components()
    table = _REGISTRIES.get(kind, {})
    if name not in table:
        known = ", ".join(sorted(table)) or "(none)"
        raise KeyError(f"unknown {kind} {name!r}; registered {kind}s: {known}")
    return table[name]


def available(kind: str) -> list[str]:
    """Sorted names registered under ``kind``."""
    _import_builtin_components()
    return sorted(_REGISTRIES.get(kind, {}))


def create(kind: str, name: str, **kwargs: Any) -> Any:
    """Build the registered component with keyword arguments."""
    return lookup(kind, name)(**kwargs)


_builtin_loaded = False

#: Modules whose import registers pairgan's own components (one line per module).
BUILTIN_MODULES: tuple[str, ...] = (
    "pairgan.data.datasets",
    "pairgan.data.labels",
    "pairgan.data.poses",
    "pairgan.data.shards",
    "pairgan.nets",
    "pairgan.methods",
)


def _import_builtin_components() -> None:
    # Importing the packages runs their @register decorators; done lazily so that importing
    # pairgan stays cheap and there is no import cycle between the registry and the components.
    global _builtin_loaded
    if _builtin_loaded:
        return
    _builtin_loaded = True
    import importlib

    for module in BUILTIN_MODULES:
        importlib.import_module(module)
