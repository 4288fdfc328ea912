"""Training: data, the fine-tuning model, the activation cache, the epoch loop, one job
(:class:`~trainers.training.engine.Runner`) and RL-Tune (:mod:`trainers.training.rltune`).
Above :mod:`trainers.jobs`; below the executors, which decide where jobs run."""
