"""Resolve a model specification string into something that builds an ``nn.Module``.

One resolver, one naming rule:

==============================  =====================================================
``resnet50`` / ``timm:resnet50``  a timm model (pretrained tags such as ``.a1_in1k`` ok)
``torchvision:resnet50``          a torchvision classification model
``pkg.module:factory``            a callable on the import path (current dir included)
``path/to/file.py:factory``       a callable defined in a Python file
``hf:ORG/NAME`` / ``hf:folder``   a Hugging Face image classifier (:mod:`graphblocks.hub`)
``model.onnx``                    an ONNX file (handled by the ONNX frontend)
==============================  =====================================================

No weights are ever downloaded here: analysis needs structure, not values (an ``hf:``
Hub id downloads its ``config.json``, offline-safe).
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from inspect import signature
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphblocks.errors import ModelBuildError, UnknownModelError

if TYPE_CHECKING:
    from torch import nn

DEFAULT_INPUT_SIZE: tuple[int, int, int] = (3, 224, 224)


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: where it comes from and how to build it without weights."""

    name: str
    source: str  # "timm" | "torchvision" | "python" | "hf"
    factory: Callable[..., nn.Module] = field(repr=False, compare=False)
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: the input size the source declares (an ``hf:`` config's), else None
    input_size: tuple[int, int, int] | None = None

    def build(self, device: str = "meta") -> nn.Module:
        """Build the module in eval mode, on ``device`` (``meta`` allocates no memory)."""
        import torch

        try:
            with torch.device(device):
                module = self.factory(**dict(self.kwargs))
        except Exception as exc:  # factories raise anything; report it on one line
            raise ModelBuildError(
                f"building {self.name!r} failed on device {device!r}: {type(exc).__name__}: {exc}",
                "check --model-arg values, or run with --debug for the traceback",
            ) from exc
        if not isinstance(module, torch.nn.Module):
            raise ModelBuildError(
                f"{self.name!r} returned {type(module).__name__}, not a torch.nn.Module",
                "point at a factory that returns the model",
            )
        return module.eval()

    def default_input_size(self, model: nn.Module | None = None) -> tuple[int, int, int]:
        """The source's own size (an ``hf:`` config's), timm's
        ``pretrained_cfg['input_size']`` when there is one, else 3,224,224."""
        if self.input_size is not None:
            return self.input_size
        cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
        if isinstance(cfg, Mapping) and len(cfg.get("input_size") or ()) == 3:
            c, h, w = cfg["input_size"]
            return int(c), int(h), int(w)
        return DEFAULT_INPUT_SIZE


def parse_model_args(pairs: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are Python literals when they parse as one."""
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ModelBuildError(f"bad --model-arg {pair!r}", "write it as key=value")
        try:
            value: Any = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        kwargs[key.strip()] = value
    return kwargs


def parse_input_size(text: str) -> tuple[int, int, int]:
    """Parse ``C,H,W`` into three positive integers."""
    try:
        parts = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) <= 0:
        raise ModelBuildError(f"bad input size {text!r}", "write it as C,H,W, e.g. 3,224,224")
    return parts


def _timm_source(name: str, kwargs: Mapping[str, Any]) -> ModelSource:
    import timm

    if not timm.is_model(name):
        raise _unknown(name)
    return ModelSource(name, "timm", _timm_factory(name), dict(kwargs))


def _timm_factory(name: str) -> Callable[..., nn.Module]:
    def factory(**kwargs: Any) -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, **kwargs)

    return factory


def _torchvision_source(name: str, kwargs: Mapping[str, Any]) -> ModelSource:
    from torchvision import models

    if name not in models.list_models():
        raise _unknown(f"torchvision:{name}")

    builder = models.get_model_builder(name)
    # segmentation and detection builders fetch ImageNet backbone weights unless told not
    # to; the graph needs none (and these machines may be offline)
    no_backbone = (
        {"weights_backbone": None} if "weights_backbone" in signature(builder).parameters else {}
    )

    def factory(**kw: Any) -> nn.Module:
        return models.get_model(name, weights=None, **{**no_backbone, **kw})

    return ModelSource(f"torchvision:{name}", "torchvision", factory, dict(kwargs))


def _python_source(spec: str, kwargs: Mapping[str, Any]) -> ModelSource:
    location, _, attr = spec.rpartition(":")
    module = _import_python_location(location)
    factory = getattr(module, attr, None)
    if not callable(factory):
        candidates = [
            n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")
        ]
        close = difflib.get_close_matches(attr, candidates, n=3, cutoff=0.0)
        raise UnknownModelError(
            f"{location!r} has no callable {attr!r}",
            f"closest: {', '.join(close)}"
            if close
            else "name a function that returns an nn.Module",
        )
    return ModelSource(spec, "python", factory, dict(kwargs))


def _import_python_location(location: str) -> Any:
    if location.endswith(".py"):
        path = Path(location)
        if not path.is_file():
            raise UnknownModelError(f"no such Python file {location!r}", "check the path")
        module_name = f"_graphblocks_user_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ModelBuildError(
                f"importing {location!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return module
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(location)
    except ModuleNotFoundError as exc:
        raise UnknownModelError(
            f"cannot import module {location!r} ({exc})",
            "check the dotted path; the current directory is on the import path",
        ) from exc


def known_model_names() -> list[str]:
    """Every model name the resolver accepts by name: timm's, then ``torchvision:`` ones."""
    import timm
    from torchvision import models

    return list(timm.list_models()) + [f"torchvision:{n}" for n in models.list_models()]


def _unknown(name: str) -> UnknownModelError:
    close = difflib.get_close_matches(name, known_model_names(), n=3, cutoff=0.0)
    return UnknownModelError(
        f"unknown model {name!r}",
        f"did you mean: {', '.join(close)}? (or give package.module:factory)",
    )


def _hf_source(name: str, kwargs: Mapping[str, Any]) -> ModelSource:
    from graphblocks import hub

    spec = hub.PREFIX + name
    config = hub.load_config(spec)

    def factory(**kw: Any) -> nn.Module:
        return hub.build_from_config(config, **kw)

    size = hub.input_size(config)
    if size is not None and "image_size" in kwargs:
        size = (size[0], int(kwargs["image_size"]), int(kwargs["image_size"]))
    return ModelSource(spec, "hf", factory, dict(kwargs), size)


_PREFIXED: dict[str, Callable[[str, Mapping[str, Any]], ModelSource]] = {
    "timm": _timm_source,
    "torchvision": _torchvision_source,
    "hf": _hf_source,
}


def is_onnx_path(spec: str) -> bool:
    """True when ``spec`` names an ONNX file (by extension)."""
    return spec.lower().endswith(".onnx")


def resolve_model(spec: str, model_args: Mapping[str, Any] | None = None) -> ModelSource:
    """Turn a model specification string into a :class:`ModelSource`.

    Raises :class:`UnknownModelError` naming the three closest model names when the
    spec matches nothing.
    """
    kwargs = dict(model_args or {})
    spec = spec.strip()
    if is_onnx_path(spec):
        raise UnknownModelError(
            f"{spec!r} is an ONNX file, not a PyTorch model",
            "analyze it with graphblocks.analyze() or `graphblocks inspect`",
        )
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _PREFIXED:
        return _PREFIXED[prefix](rest, kwargs)
    if sep:
        return _python_source(spec, kwargs)
    return _timm_source(spec, kwargs)
