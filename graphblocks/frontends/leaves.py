"""Which modules a frontend keeps whole, and which functions it must not trace into.

A *leaf* module becomes one graph node. Leaves are:

* modules registered with :func:`register_leaf_module` or timm's own
  ``register_notrace_module`` (timm's registry is read when timm is installed);
* built-in ``torch.nn`` modules with no child modules (``Conv2d``, ``ReLU``,
  ``MultiheadAttention``...). Built-in containers with children, such as
  ``TransformerEncoderLayer``, are traced through so their structure is visible.

*Autowrapped* functions (timm's ``register_notrace_function`` registry plus
:func:`register_autowrap_function`) become one ``function`` node each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from graphblocks.params import ParamTable

_EXTRA_LEAVES: list[type[nn.Module]] = []
_EXTRA_FUNCTIONS: list[Callable[..., Any]] = []
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def register_leaf_module(cls: type[nn.Module]) -> type[nn.Module]:
    """Keep every instance of ``cls`` as one node (usable as a class decorator)."""
    _EXTRA_LEAVES.append(cls)
    return cls


def register_autowrap_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Record calls of ``fn`` as one node instead of tracing into it."""
    _EXTRA_FUNCTIONS.append(fn)
    return fn


def _timm_registry() -> tuple[list[type[nn.Module]], list[Callable[..., Any]]]:
    try:
        from timm.layers import get_notrace_functions, get_notrace_modules
    except ImportError:  # timm is optional for plain PyTorch models
        return [], []
    return list(get_notrace_modules()), list(get_notrace_functions())


def leaf_module_types() -> tuple[type[nn.Module], ...]:
    """Registered leaf classes, timm's included."""
    timm_leaves, _ = _timm_registry()
    return tuple(dict.fromkeys([*timm_leaves, *_EXTRA_LEAVES]))


def autowrap_functions() -> tuple[Callable[..., Any], ...]:
    """Registered not-traceable functions, timm's included."""
    _, timm_functions = _timm_registry()
    return tuple(dict.fromkeys([*timm_functions, *_EXTRA_FUNCTIONS]))


def is_builtin_leaf(module: nn.Module) -> bool:
    """A ``torch.nn`` module without child modules."""
    cls_module = type(module).__module__
    return (
        cls_module.startswith(("torch.nn", "torch.ao.nn"))
        and not isinstance(module, _CONTAINERS)
        and next(module.children(), None) is None
    )


def make_leaf_predicate() -> Callable[[nn.Module], bool]:
    """A predicate that tells whether a module is a leaf, with the registries read once."""
    registered = leaf_module_types()

    def is_leaf(module: nn.Module) -> bool:
        return isinstance(module, registered) or is_builtin_leaf(module)

    return is_leaf


def make_opaque_predicate() -> Callable[[nn.Module], bool]:
    """A predicate for *opaque* leaves: registered composite modules (with children),
    whose inside no frontend sees. A registered module without children, such as timm's
    ``Conv2dSame``, is a plain layer."""
    registered = leaf_module_types()

    def is_opaque(module: nn.Module) -> bool:
        return (
            isinstance(module, registered)
            and not is_builtin_leaf(module)
            and next(module.children(), None) is not None
        )

    return is_opaque


def module_node_attrs(
    module: nn.Module, path: str, table: ParamTable, is_opaque: Callable[[nn.Module], bool]
) -> dict[str, Any]:
    """The graph attributes of a call of leaf ``module`` at ``path`` (see graphblocks.graph)."""
    return {
        "op": type(module).__name__,
        "module": path,
        "bases": class_lineage(module),
        "params": table.canonical_all(module_params(module, path)),
        "opaque": is_opaque(module),
    }


def class_lineage(module: nn.Module) -> list[str]:
    """Class names along ``type(module).__mro__`` up to (excluding) ``nn.Module``."""
    names = []
    for cls in type(module).__mro__:
        if cls is nn.Module:
            break
        names.append(cls.__name__)
    return names


def module_params(module: nn.Module, path: str) -> list[str]:
    """``state_dict`` names of every parameter under ``module`` (aliases included)."""
    return [name for name, _ in module.named_parameters(prefix=path, remove_duplicate=False)]
