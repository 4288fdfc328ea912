"""The model to fine-tune: the partition's network with its classifier replaced.

``FineTuneModel(trunk, head)``: the trunk is the source network with its classifier
swapped for an identity (timm's ``reset_classifier(0)`` where there is one), the head
is Barakat & Huang's (flatten → Linear 512 → ReLU → Dropout 0.5 → Linear classes) or a
single Linear. Trunk parameters keep their partition names. A trunk may return more
than a tensor (a Hugging Face ``ModelOutput``, whose ``logits`` are then the pooled
features, a tuple, a dict): :func:`features_of` picks the tensor the head takes.

Freezing follows Keras: a frozen parameter has ``requires_grad`` off, and a module
trains (``module.training``) only when it holds a trainable parameter, or holds none
and its parent trains; a frozen BatchNorm therefore uses its running statistics.
With ``bn="frozen"`` every BatchNorm uses them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graphblocks import GraphblocksError, Partition, PartitionError

#: the BatchNorm layers whose statistics ``bn="frozen"`` keeps
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
#: every normalization layer (timm's BatchNormAct2d and LayerNorm2d subclass these)
NORMS = (
    *BATCH_NORMS,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


class WeightsError(GraphblocksError):
    """Weights that cannot be loaded into the partition's model."""


class FineTuneModel(nn.Module):
    """``head(trunk(x))``."""

    def __init__(self, trunk: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.trunk(x))

    def classify(self, features: Any) -> torch.Tensor:
        """The head's logits for what the trunk (or its last segments) returned."""
        return self.head(features_of(features))


def features_of(output: Any) -> torch.Tensor:
    """The tensor in a network's output: itself, a ``ModelOutput``'s or dict's
    ``logits`` (else its first tensor), or a tuple's first element."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        if isinstance(output.get("logits"), torch.Tensor):
            return output["logits"]
        output = tuple(output.values())
    if isinstance(output, (tuple, list)) and output:
        return features_of(output[0])
    raise WeightsError(
        f"the network returns {type(output).__name__}, which holds no tensor",
        "give a model that returns its logits (a tensor, or a ModelOutput with logits)",
    )


def make_head(
    kind: str, features: int, classes: int, hidden: int = 512, dropout: float = 0.5
) -> nn.Module:
    """The paper's head, or ``linear``: flatten then one Linear."""
    if kind == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(features, classes))
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(features, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, classes),
    )


def _timm_pretrained(name: str, args: dict[str, Any]) -> nn.Module:
    import timm

    import graphblocks

    with graphblocks.hub_access(f"pretrained weights for {name!r}"):
        model: nn.Module = timm.create_model(name.removeprefix("timm:"), pretrained=True, **args)
    return model


def _torchvision_pretrained(name: str, args: dict[str, Any]) -> nn.Module:
    from torchvision import models

    model: nn.Module = models.get_model(
        name.removeprefix("torchvision:"), weights="DEFAULT", **args
    )
    return model


def _hf_pretrained(name: str, args: dict[str, Any]) -> nn.Module:
    import graphblocks

    return graphblocks.load_hf_pretrained(name, **args)


#: model source -> how its pretrained weights load (a source not here has none)
PRETRAINED: dict[str, Callable[[str, dict[str, Any]], nn.Module]] = {
    "timm": _timm_pretrained,
    "torchvision": _torchvision_pretrained,
    "hf": _hf_pretrained,
}


def has_source_weights(partition: Partition, *, pretrained: bool, weights: str | None) -> bool:
    """Whether the model starts from transferred weights (a ``weights`` file, or the
    source's pretrained weights when it has any), not from random initialisation."""
    import graphblocks

    if weights:
        return True
    name, args = partition.model.name, dict(partition.settings.get("model_args", {}))
    return pretrained and graphblocks.resolve_model(name, args).source in PRETRAINED


def build_source_model(partition: Partition, *, pretrained: bool) -> nn.Module:
    """The partition's network on the CPU, with its source's pretrained weights when
    asked (:data:`PRETRAINED`; Python factories have none). A Hub that cannot give them
    fails in one line, within seconds (:func:`graphblocks.hub_access`)."""
    import graphblocks

    name, args = partition.model.name, dict(partition.settings.get("model_args", {}))
    source = graphblocks.resolve_model(name, args)
    if not pretrained or source.source not in PRETRAINED:
        return source.build("cpu")
    try:
        model = PRETRAINED[source.source](name, args)
    except graphblocks.GraphblocksError:
        raise
    except Exception as exc:
        raise WeightsError(
            f"cannot get pretrained weights for {name!r} ({type(exc).__name__}; is the hub reachable?)",
            "pass --weights FILE (safetensors or a state dict), or --no-pretrained",
        ) from exc
    return model.eval()


def load_weights(model: nn.Module, partition: Partition, path: str | Path) -> str:
    """Load the checkpoint at ``path`` into ``model``. A checkpoint whose names are the
    partition's (for an ``hf:`` model: once renamed as transformers renames them on
    load) loads as it is (``""`` returned); any other is ported by graph structure
    (:func:`graphblocks.port_state_dict`, checkpoint order) and a one-line note saying
    so is returned. One that fits neither way is refused, naming the first mismatch."""
    import graphblocks

    state = graphblocks.read_checkpoint(path, saved_from=partition.model.name)
    expected = {p for b in partition.blocks for p in b.params} | set(partition.head.params)
    buffers = {n for n, _ in model.named_buffers()}
    missing = sorted(expected - set(state))
    aliases = {a for names in partition.tied.values() for a in names}
    extra = sorted(set(state) - expected - buffers - aliases)
    if not missing and not extra:
        model.load_state_dict(state, strict=False)
        return ""
    try:
        ported = graphblocks.port_state_dict(state, (model, partition))
    except graphblocks.PortError as error:
        raise WeightsError(
            f"weights {Path(path).name} do not match the partition (missing {missing[:2]}, "
            f"extra {extra[:2]}) and cannot be ported: {error.problem}",
            "give the weights of the model the partition was made for, or port them with "
            "graphblocks port-weights --from SOURCE_MODEL",
        ) from error
    model.load_state_dict(ported.state)
    return (
        f"weights {Path(path).name}: {len(ported.pairs)} tensors ported from another layout "
        f"({ported.layout}, first key {ported.pairs[0].source!r})"
    )


def _drop_classifier(model: nn.Module, partition: Partition) -> list[str]:
    """Replace the classifier by an identity; return the classifier's parameter names."""
    before = {n for n, _ in model.named_parameters()}
    reset = getattr(model, "reset_classifier", None)
    if callable(reset):
        reset(0)
    else:
        classifier = next(
            (
                name
                for name in reversed(partition.head.layers)
                if isinstance(_module(model, name), nn.Linear)
            ),
            None,
        )
        if classifier is None:
            raise PartitionError(
                f"cannot find the classifier of {partition.model.name!r} among its head layers {partition.head.layers}",
                "give a model whose head ends in a Linear layer",
            )
        parent, _, child = classifier.rpartition(".")
        setattr(_module(model, parent) if parent else model, child, nn.Identity())
    return sorted(before - {n for n, _ in model.named_parameters()})


def _module(model: nn.Module, path: str) -> nn.Module | None:
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None


def build_finetune_model(
    partition: Partition,
    classes: int,
    input_size: tuple[int, ...],
    *,
    pretrained: bool,
    weights: str | None = None,
    head: str = "paper",
    hidden: int = 512,
    dropout: float = 0.5,
) -> tuple[FineTuneModel, list[str], str]:
    """The model to train, the names of the source classifier's parameters (gone), and
    how ``weights`` were loaded (:func:`load_weights`'s note)."""
    model = build_source_model(partition, pretrained=pretrained and weights is None)
    partition.check_model(model)
    note = load_weights(model, partition, weights) if weights else ""
    dropped = _drop_classifier(model, partition)
    model.eval()
    with torch.no_grad():
        features = features_of(model(torch.zeros(1, *input_size))).flatten(1).shape[1]
    finetune = FineTuneModel(model, make_head(head, features, classes, hidden, dropout))
    return finetune, dropped, note


def freeze(model: FineTuneModel, trainable: Collection[str], bn: str = "train") -> int:
    """Make exactly ``trainable`` trunk parameters (and the whole head) trainable, set
    train/eval per module (see the module docstring); return the trainable count."""
    keep = set(trainable)
    for name, param in model.trunk.named_parameters():
        param.requires_grad_(name in keep)
    for param in model.head.parameters():
        param.requires_grad_(True)
    set_modes(model, bn)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def norm_params(module: nn.Module) -> set[str]:
    """The names of the parameters that normalization layers of ``module`` own."""
    return {
        f"{path}.{name}" if path else name
        for path, child in module.named_modules()
        if isinstance(child, NORMS)
        for name, _ in child.named_parameters(recurse=False)
    }


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Every module of ``model`` in eval mode inside the block; each module's own
    training flag restored after it."""
    training = [m for m in model.modules() if m.training]
    model.eval()
    try:
        yield model
    finally:
        for module in training:
            module.training = True


def set_modes(model: nn.Module, bn: str = "train", parent_trains: bool = True) -> None:
    """``module.training`` per the Keras rule, recursively (call instead of ``train()``)."""
    for child in model.children():
        own = list(child.parameters())
        trains = any(p.requires_grad for p in own) if own else parent_trains
        if bn == "frozen" and isinstance(child, BATCH_NORMS):
            trains = False
        child.training = trains
        set_modes(child, bn, trains)
    model.training = any(p.requires_grad for p in model.parameters()) or parent_trains
