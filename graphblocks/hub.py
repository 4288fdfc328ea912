"""Hugging Face models and the Hub: ``hf:`` sources, and downloads that fail fast offline.

``hf:ORG/NAME`` names a model on the Hub, ``hf:path/to/folder`` a folder written by
``save_pretrained`` (a ``config.json`` and, for weights, ``model.safetensors`` or
``pytorch_model.bin``). Analysis needs only the config: the model is built from it with
``AutoModelForImageClassification.from_config``, on the meta device like every other
source; weights come with :func:`load_hf_pretrained` (``from_pretrained``), which reads a
folder without any network.

Whatever downloads from the Hub (a config, transformers' or timm's pretrained weights)
runs inside :func:`hub_access`. Offline is decided once, up front, in at most
:data:`PROBE_SECONDS`: ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``), or no TCP
connection to the Hub's endpoint (``HF_ENDPOINT``). Offline, the hub client reads only
its local cache, so a model already there is used as it is, and one that is not fails
at once with one line naming ``--weights`` and the cache, instead of the client's
minute of retries and warnings.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from graphblocks.errors import GraphblocksError, ModelBuildError, UnknownModelError

if TYPE_CHECKING:
    import torch
    from torch import nn

PREFIX = "hf:"
#: seconds the reachability probe may take, name resolution included
PROBE_SECONDS = 3.0


class HubError(GraphblocksError):
    """A model or file that the Hugging Face Hub could not give."""


def is_hf_spec(spec: str) -> bool:
    """Whether a model specification names a Hugging Face model (``hf:…``)."""
    return spec.startswith(PREFIX)


def endpoint() -> tuple[str, int]:
    """The Hub's host and port (``HF_ENDPOINT``, else huggingface.co:443)."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


def offline_requested() -> bool:
    """``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set to a true value."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_reachable(timeout: float = PROBE_SECONDS) -> bool:
    """Whether a TCP connection to the Hub's endpoint opens within ``timeout`` seconds
    (name resolution included: it runs in a thread that is abandoned when late). Asked
    once per endpoint and process: loading a Hub model reads its config, then its
    weights, and probes once."""
    return _reachable(endpoint(), timeout)


@functools.cache
def _reachable(address: tuple[str, int], timeout: float) -> bool:
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(address, timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


#: how to do without the Hub, for weights
WEIGHTS_FIX = (
    "pass --weights FILE (or a folder as hf:PATH), or fetch the model into the cache "
    "(HF_HOME) on a machine that reaches the Hub"
)
#: how to do without the Hub, for a model's structure
CONFIG_FIX = (
    "give a folder written by save_pretrained as hf:PATH, or fetch the model into the "
    "cache (HF_HOME) on a machine that reaches the Hub"
)


@contextlib.contextmanager
def hub_access(what: str, fix: str = WEIGHTS_FIX) -> Iterator[bool]:
    """Run Hub downloads of ``what`` (e.g. "pretrained weights for 'resnet18'"): offline
    (the local cache only) when offline is requested or the Hub is unreachable; yields
    whether it is offline. A download that fails offline becomes one :class:`HubError`
    whose fix is ``fix``."""
    offline = offline_requested() or not hub_reachable()
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = offline
    try:
        yield offline
    except GraphblocksError:
        raise
    except Exception as exc:
        if not offline:
            raise
        reason = "HF_HUB_OFFLINE is set" if offline_requested() else "the Hub cannot be reached"
        raise HubError(f"{what}: not in the local Hugging Face cache, and {reason}", fix) from exc
    finally:
        constants.HF_HUB_OFFLINE = before


def _name(spec: str) -> str:
    return spec.removeprefix(PREFIX)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ModelBuildError(
            "hf: models need transformers, which is not installed",
            "pip install 'graphblocks[hf]'",
        ) from None
    return transformers


def load_config(spec: str) -> Any:
    """The ``PretrainedConfig`` of an ``hf:`` spec (a folder's ``config.json``, or the
    Hub's, through the offline-safe :func:`hub_access`); one line when there is none."""
    name = _name(spec)
    transformers = _transformers()
    folder = Path(name).expanduser()
    if folder.is_dir() or name.startswith((".", "/", "~")):
        if not (folder / "config.json").is_file():
            raise UnknownModelError(
                f"{name!r} holds no config.json",
                "give a folder written by save_pretrained, or a Hub id as hf:ORG/NAME",
            )
        return transformers.AutoConfig.from_pretrained(str(folder))
    with hub_access(f"the config of {spec!r}", CONFIG_FIX):
        try:
            return transformers.AutoConfig.from_pretrained(name)
        except OSError as exc:
            if "offline" in str(exc).lower() or "connect" in str(exc).lower():
                raise
            raise UnknownModelError(
                f"no Hugging Face model {name!r}",
                "check the id (hf:ORG/NAME) or give a local folder as hf:PATH",
            ) from exc


def _auto_class() -> Any:
    return _transformers().AutoModelForImageClassification


def _unsupported(config: Any) -> ModelBuildError:
    return ModelBuildError(
        f"{type(config).__name__} has no image-classification model in transformers",
        "give an image classifier (ResNet, ConvNeXt, ViT, Swin, ...)",
    )


def with_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of ``config`` with ``overrides`` (``--model-arg`` values) set on it."""
    config = copy.deepcopy(config)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def build_from_config(config: Any, **kwargs: Any) -> nn.Module:
    """An image classifier of ``config``'s architecture with fresh weights (on the
    current default device: ``meta`` allocates nothing); ``kwargs`` override the config."""
    config = with_overrides(config, kwargs)
    try:
        model: nn.Module = _auto_class().from_config(config)
    except ValueError as exc:
        raise _unsupported(config) from exc
    return model


def load_hf_pretrained(spec: str, **kwargs: Any) -> nn.Module:
    """The model of an ``hf:`` spec with its weights (``from_pretrained``: a folder reads
    no network; a Hub id goes through :func:`hub_access`); ``kwargs`` override the config."""
    config = with_overrides(load_config(spec), kwargs)
    with hub_access(f"the weights of {spec!r}"):
        try:
            model: nn.Module = _auto_class().from_pretrained(_name(spec), config=config)
        except ValueError as exc:
            raise _unsupported(config) from exc
    return model.eval()


def input_size(config: Any) -> tuple[int, int, int] | None:
    """C, H, W from the config's ``num_channels`` and ``image_size`` (None: no size)."""
    size = getattr(config, "image_size", None)
    if size is None:
        return None
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return int(getattr(config, "num_channels", 3)), int(height), int(width)


def module_state_dict(state: dict[str, torch.Tensor], spec: str) -> dict[str, torch.Tensor]:
    """``state``, a checkpoint of the ``hf:`` model ``spec`` (saved by transformers, in
    the Hub's key layout, or under its modules' names), renamed as ``from_pretrained``
    renames it on load: under the names of the model's modules (transformers 5 keeps
    the Hub's older layout in files, e.g. ViT's ``encoder.layer.0.attention.attention.query``
    for the module ``layers.0.attention.q_proj``). Raises :class:`HubError` naming a
    tensor of the model that ``state`` lacks."""
    import torch

    config = load_config(spec)
    with torch.device("meta"):
        cls: Any = type(build_from_config(config))
    model, info = cls.from_pretrained(
        None, config=config, state_dict=dict(state), output_loading_info=True
    )
    missing = sorted(info.get("missing_keys", ()))
    if missing:
        raise HubError(
            f"the checkpoint is not one of {spec!r}: it lacks {missing[0]!r} "
            f"({len(missing)} tensors missing)",
            "give the checkpoint saved from that model, or port it with --from SOURCE_MODEL",
        )
    return {k: v.detach() for k, v in model.state_dict().items()}
