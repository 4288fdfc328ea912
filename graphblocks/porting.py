"""Port a checkpoint between implementations of one network by graph structure.

Two implementations of a network (timm's and torchvision's MobileNetV2, or an
EfficientNet-Lite repository's and timm's) name their tensors differently but use them in
the same order. A model's **graph order** lists its state: for each layer of its
partition in topological order (the order in which forward uses it), the layer's
parameters, then the buffers of the modules that own them (BatchNorm running statistics
go with their layer); then the rest (buffers of parameter-free modules, state that
forward never reads) in ``state_dict`` order.
``num_batches_tracked`` counters are left out everywhere (an implementation may not save
them; a ported model gets zeros).

Porting pairs the i-th tensor of the checkpoint's order with the i-th of the target's
graph order and requires equal shapes:

* with a source model (``--from``), the checkpoint's order is the source model's graph
  order, so key names and key order in the file do not matter;
* without one, it is the order of the checkpoint's keys (a ``state_dict`` saved by
  ``torch.save`` keeps its module's registration order); when it does not fit the
  target's graph order, the target's own ``state_dict`` (registration) order is tried
  next, since two implementations often register their modules alike.

A pairing is refused (:class:`PortError`, nothing written) when the counts differ, when
a pair's shapes differ (the message names the first such index, both names and both
shapes), or, with a source model, when two tensors of one layer have the same shape and
no role name (``weight``, ``bias``, ``running_mean``, ``running_var``) tells them apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from graphblocks.errors import PortError
from graphblocks.hub import HubError, is_hf_spec, module_state_dict

if TYPE_CHECKING:
    import torch
    from torch import nn

    from graphblocks.partition import Partition

#: the suffixes that name a tensor's role in its layer, in the order used within a layer
ROLES = ("weight", "bias", "running_mean", "running_var")
#: keys under which training scripts nest a state dict
_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "module", "net")
_COUNTER = "num_batches_tracked"


@dataclass(frozen=True)
class Pair:
    """One tensor's move: ``source`` (checkpoint key) onto ``target`` (state_dict name)."""

    index: int
    source: str
    target: str
    shape: tuple[int, ...]


def read_checkpoint(path: str | Path, saved_from: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth``/``.pt``/``.bin``/``.ckpt`` (``torch.save``) or
    ``.safetensors`` file (or of a ``save_pretrained`` folder's weight file), unwrapped
    from a ``state_dict``/``model`` key and stripped of DataParallel's ``module.`` prefix,
    in the file's order. With ``saved_from`` an ``hf:`` model, a checkpoint of that model
    is renamed as transformers renames it on load (:func:`graphblocks.hub.module_state_dict`);
    one that is not is returned as read."""
    state = _read_file(Path(path))
    if saved_from is None or not is_hf_spec(saved_from):
        return state
    try:
        return module_state_dict(state, saved_from)
    except HubError:
        return state


#: the weight files of a folder written by transformers' ``save_pretrained``, preferred first
FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    import torch

    if path.is_dir():
        found = [path / name for name in FOLDER_WEIGHTS if (path / name).is_file()]
        if not found:
            raise PortError(
                f"{str(path)!r} holds no {' or '.join(FOLDER_WEIGHTS)}",
                "give the checkpoint file, or a folder written by save_pretrained",
            )
        path = found[0]
    if not path.is_file():
        raise PortError(f"no such checkpoint {str(path)!r}", "check the path")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data: object = load_file(str(path))
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # any reader failure is a bad file to the user
        raise PortError(
            f"cannot read checkpoint {path.name}: {type(error).__name__}",
            "give a torch.save state dict (.pth, .pt, .bin) or a .safetensors file",
        ) from error
    return _tensors_of(_unwrap(data), path.name)


def _fused_note(a: Sequence[int], b: Sequence[int]) -> str:
    """Why two shapes that differ only by a factor of 3 in their first dimension do:
    one side fuses the attention's q, k and v projections that the other keeps apart
    (timm's ``qkv`` against Hugging Face's ``q_proj``, ``k_proj``, ``v_proj``)."""
    if len(a) == len(b) and a and list(a[1:]) == list(b[1:]) and 3 in (a[0] / b[0], b[0] / a[0]):
        return (
            " (one side fuses the attention's q, k and v projections into one tensor that"
            " the other keeps apart; porting pairs whole tensors, it does not split or fuse them)"
        )
    return ""


def _unwrap(data: object) -> object:
    while isinstance(data, Mapping):
        nested = next((data[k] for k in _NESTED_KEYS if isinstance(data.get(k), Mapping)), None)
        if nested is None:
            return data
        data = nested
    return data


def _tensors_of(data: object, name: str) -> dict[str, torch.Tensor]:
    import torch

    if not isinstance(data, Mapping):
        raise PortError(f"{name} holds no state dict", "save model.state_dict(), not the model")
    tensors = {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise PortError(f"{name} holds no tensors", "save model.state_dict()")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    return tensors


def graph_order(model: nn.Module, partition: Partition) -> list[str]:
    """The ``state_dict`` names of ``model`` in graph order (module docstring);
    ``partition`` is ``model``'s."""
    state = {k: v for k, v in model.state_dict(keep_vars=True).items() if not _is_counter(k)}
    buffers = {name: [f"{name}.{b}" if name else b for b, _ in module.named_buffers(recurse=False)]
               for name, module in model.named_modules()}  # fmt: skip
    order: dict[str, None] = {}
    for layer in partition.layers:
        params = [p for p in layer.params if p in state]
        order.update(dict.fromkeys(sorted(params, key=lambda p: _role_rank(p, params))))
        for owner in dict.fromkeys(p.rpartition(".")[0] for p in params):
            order.update(dict.fromkeys(b for b in buffers.get(owner, []) if b in state))
    order.update(dict.fromkeys(state))
    return list(order)


def _is_counter(name: str) -> bool:
    return name.rpartition(".")[2] == _COUNTER


def _role_rank(name: str, layer: list[str]) -> int:
    role = name.rpartition(".")[2]
    return ROLES.index(role) if role in ROLES else len(ROLES) + layer.index(name)


def check_unambiguous(model: nn.Module, order: list[str], label: str) -> None:
    """Refuse when two tensors of one module have one shape and no role name."""
    state = model.state_dict(keep_vars=True)
    seen: dict[tuple[str, tuple[int, ...]], str] = {}
    for name in order:
        owner, _, role = name.rpartition(".")
        if role in ROLES:
            continue
        key = (owner, tuple(state[name].shape))
        if key in seen:
            raise PortError(
                f"ambiguous pairing in {label}: {seen[key]!r} and {name!r} have shape "
                f"{list(key[1])} and no role name",
                "port without --from (checkpoint order) or rename one of them",
            )
        seen[key] = name


def pair_tensors(
    source: list[tuple[str, tuple[int, ...]]], target: list[tuple[str, tuple[int, ...]]]
) -> list[Pair]:
    """Pair the i-th source tensor with the i-th target tensor; refuse on a count or
    shape mismatch, naming the first one."""
    for index, ((s, s_shape), (t, t_shape)) in enumerate(zip(source, target, strict=False)):
        if s_shape != t_shape:
            raise PortError(
                f"tensor {index} does not fit: {s!r} {list(s_shape)} vs {t!r} {list(t_shape)}"
                + _fused_note(s_shape, t_shape),
                "the checkpoint is of another architecture or width; check --to (and --from)",
            )
    if len(source) != len(target):
        short, extra = ("checkpoint", target) if len(source) < len(target) else ("model", source)
        index = min(len(source), len(target))
        raise PortError(
            f"the checkpoint has {len(source)} tensors and the model {len(target)}: the {short} "
            f"ends at tensor {index} ({extra[index][0]!r} {list(extra[index][1])} is unpaired)",
            "the checkpoint is of another architecture; check --to (and --from)",
        )
    return [
        Pair(i, s, t, shape)
        for i, ((s, shape), (t, _)) in enumerate(zip(source, target, strict=True))
    ]


def checkpoint_order(
    checkpoint: Mapping[str, torch.Tensor],
    source: tuple[nn.Module, Partition] | None = None,
) -> list[str]:
    """The checkpoint's keys in the order they are paired: its own, or, with a source
    model, that model's graph order (every key must then be one of its tensors)."""
    keys = [k for k in checkpoint if not _is_counter(k)]
    if source is None:
        return keys
    model, partition = source
    order = graph_order(model, partition)
    check_unambiguous(model, order, "the source model")
    missing = [k for k in order if k not in checkpoint]
    if missing:
        raise PortError(
            f"the checkpoint has no {missing[0]!r} ({len(missing)} of the source model's "
            "tensors missing)",
            "give the --from model the checkpoint was saved from",
        )
    return order


@dataclass(frozen=True)
class Ported:
    """A ported checkpoint: ``state`` is a complete ``state_dict`` of the target model,
    ``pairs`` how each tensor moved, ``layout`` the order the checkpoint was read in
    (``checkpoint order``, or ``graph order of MODEL``)."""

    state: dict[str, torch.Tensor]
    pairs: list[Pair]
    layout: str

    def to_dict(self) -> dict[str, object]:
        """The mapping as plain data (``--json``)."""
        return {
            "layout": self.layout,
            "tensors": len(self.pairs),
            "pairs": [
                {"index": p.index, "source": p.source, "target": p.target, "shape": list(p.shape)}
                for p in self.pairs
            ],
        }


def port_state_dict(
    checkpoint: Mapping[str, torch.Tensor],
    target: tuple[nn.Module, Partition],
    source: tuple[nn.Module, Partition] | None = None,
) -> Ported:
    """The checkpoint's tensors under the target model's names, paired as the module
    docstring says; raises :class:`PortError` and changes nothing when they do not fit."""
    import torch

    keys = checkpoint_order(checkpoint, source)
    model, partition = target
    order = graph_order(model, partition)
    if source is not None:
        check_unambiguous(model, order, "the target model")
    state = model.state_dict(keep_vars=True)
    orders = {f"graph order of {source[1].model.name}" if source else "checkpoint order": order}
    if source is None:  # a checkpoint saved in registration order, onto the same
        orders["checkpoint order onto the model's state_dict order"] = [
            k for k in state if not _is_counter(k)
        ]
    pairs, layout = _first_fit(
        [(k, tuple(checkpoint[k].shape)) for k in keys],
        {label: [(t, tuple(state[t].shape)) for t in names] for label, names in orders.items()},
    )
    ported = {p.target: checkpoint[p.source].detach().to(state[p.target].dtype) for p in pairs}
    for name in state:
        if _is_counter(name):
            ported[name] = torch.zeros((), dtype=torch.long)
    return Ported({name: ported[name].contiguous() for name in state}, pairs, layout)


def _first_fit(
    source: list[tuple[str, tuple[int, ...]]], targets: dict[str, list[tuple[str, tuple[int, ...]]]]
) -> tuple[list[Pair], str]:
    """The pairs onto the first target order that fits, and its label; the first
    order's error when none does."""
    first: PortError | None = None
    for label, target in targets.items():
        try:
            return pair_tensors(source, target), label
        except PortError as error:
            first = first or error
    assert first is not None, "no target order given"
    raise first


def model_and_partition(
    spec: str, model_args: Mapping[str, object] | None = None
) -> tuple[nn.Module, Partition]:
    """A model specification built as analysis builds it (on the meta device where it
    can be: shapes, no weights) and its partition."""
    from graphblocks.build import Settings
    from graphblocks.pipeline import analyze_model

    analysis = analyze_model(spec, Settings(model_args=dict(model_args or {})))
    if analysis.model is None:
        raise PortError(
            f"cannot port weights onto {spec!r}: it is not a PyTorch model",
            "give a timm, torchvision or package.module:factory model",
        )
    return analysis.model, analysis.partition


def port_checkpoint(
    path: str | Path,
    to: str | tuple[nn.Module, Partition],
    source: str | None = None,
    model_args: Mapping[str, object] | None = None,
) -> Ported:
    """:func:`port_state_dict` of the checkpoint at ``path`` onto ``to`` (a model
    specification, or a model and its partition), from the ``source`` specification
    when given; ``model_args`` apply to the target. A checkpoint of an ``hf:`` source
    is first renamed as transformers renames it on load (:func:`read_checkpoint`)."""
    target = model_and_partition(to, model_args) if isinstance(to, str) else to
    origin = model_and_partition(source) if source else None
    return port_state_dict(read_checkpoint(path, saved_from=source), target, origin)


def save_state_dict(path: str | Path, state: Mapping[str, torch.Tensor]) -> None:
    """Write ``state`` as safetensors, atomically."""
    from safetensors.torch import save_file

    from graphblocks.atomic import atomic_target

    with atomic_target(Path(path)) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
