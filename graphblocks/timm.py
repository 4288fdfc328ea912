"""timm's optimizer factory on graphblocks' blocks, for any model.

timm's ``create_optimizer_v2(model, ..., layer_decay=0.75)`` groups parameters by the model's
``group_matcher()``, written by hand per architecture; a model without one (a torchvision or
Hugging Face model, or a timm model whose matcher misses a token) falls back to chunking
parameters in name order. :func:`set_group_matcher` gives the model a matcher from its
partition instead: one group per block, then the head, so timm's layer decay follows the
graph. timm puts each group's decay in ``lr_scale``, which its own schedulers apply; with a
``torch.optim`` scheduler use :func:`graphblocks.optim.param_groups`, which sets ``lr`` too.
"""

from __future__ import annotations

from torch import nn

from graphblocks.exports.timm_matcher import group_matcher
from graphblocks.partition import Partition


def set_group_matcher(model: nn.Module, partition: Partition | None = None) -> Partition:
    """Give ``model`` (on the instance) a ``group_matcher(coarse=False)`` that returns one
    pattern per block of ``partition`` (an analysis of ``model`` when not given), then one
    for the head; returns the partition."""
    if partition is None:
        from graphblocks import analyze

        partition = analyze(model)
    partition.check_model(model)
    patterns = group_matcher(partition, head=True)

    def matcher(coarse: bool = False) -> dict[str, str]:
        """graphblocks' blocks, then the head (``coarse`` changes nothing: blocks are
        already the coarse unit)."""
        return dict(patterns)

    vars(model)["group_matcher"] = matcher  # on the instance: it shadows a class's own
    return partition
