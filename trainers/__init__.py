"""Fine-tuning on graphblocks partitions: block-wise (Barakat & Huang 2023) and baselines.

Reads partitions through graphblocks' public API; graphblocks never imports this package.
Entry points: the ``graphblocks-train`` command (:mod:`trainers.cli`) and
:func:`trainers.session.run` with a :class:`trainers.settings.config.TrainConfig`.
"""
