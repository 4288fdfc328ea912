"""How firmly B_opt was chosen: the margin over the runner-up and a bootstrap over the
validation images.

A choice among candidates c = 1..m is made on one validation split of n images. With
h_c ∈ {0, 1}ⁿ the images candidate c classifies right, the chosen block ĉ leads the
runner-up r by the **margin** Σᵢ h_ĉ,ᵢ − Σᵢ h_r,ᵢ images (0 when the loss decided).

The **bootstrap** redraws the split: B resamples I_b of n image indices drawn uniformly
with replacement (Efron 1979); in each, every candidate's count Σ_{i∈I_b} h_c,i is taken
and the candidate with the highest count wins; k candidates tied at the top each win
1/k of it. ``stands`` is the share of resamples that ĉ wins: how often another draw of
validation images of the same size would have made the same choice by accuracy. A tie is
shared rather than given to the rule's tie-break (the lower loss) because the per-image
losses are not kept: two blocks that classify every image alike stand at ½ each, which
is what their accuracies can tell.
A choice that stands in fewer than :data:`COIN_FLIP` of them is a coin flip.

Resamples are drawn from a fixed seed, so a results file is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: below this share of resamples the choice is reported as a coin flip
COIN_FLIP = 0.6
#: bootstrap resamples of the validation split
RESAMPLES = 2000


@dataclass(frozen=True)
class Confidence:
    """The chosen block's lead over the ``runner_up`` at the decision, in validation
    images, and the share of bootstrap resamples in which the choice stands."""

    runner_up: int
    margin_images: int
    images: int
    stands: float
    resamples: int = RESAMPLES

    @property
    def coin_flip(self) -> bool:
        """The choice stands in fewer than :data:`COIN_FLIP` of the resamples."""
        return self.stands < COIN_FLIP


def hits_string(right: Sequence[bool]) -> str:
    """Per-image correctness as ``"0"``/``"1"`` characters, in the split's order."""
    return "".join("1" if r else "0" for r in right)


def choice_confidence(ranking: Sequence[int], hits: Sequence[str]) -> Confidence | None:
    """The confidence of choosing ``ranking[0]`` among the candidates ``ranking`` (best
    first, as the rule ranked them on the whole split), each with its per-image hits
    (:func:`hits_string`) in the same order; None with fewer than two candidates, or
    when any candidate's hits are missing or of another length."""
    lengths = {len(h) for h in hits}
    if len(ranking) < 2 or len(hits) != len(ranking) or len(lengths) != 1 or 0 in lengths:
        return None
    table = np.array([[c == "1" for c in h] for h in hits], dtype=np.int32)
    n = table.shape[1]
    draws = np.random.default_rng(0).integers(0, n, size=(RESAMPLES, n))
    counts = np.stack([np.bincount(d, minlength=n) for d in draws]) @ table.T  # (B, m)
    top = counts == counts.max(axis=1, keepdims=True)
    wins = top[:, 0] / top.sum(axis=1)
    right = table.sum(axis=1)
    return Confidence(
        runner_up=ranking[1],
        margin_images=int(right[0] - right[1]),
        images=n,
        stands=round(float(wins.mean()), 4),
    )
