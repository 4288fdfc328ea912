"""Jobs and what they leave: what a job trains (strategies), its result and the run's
``results.json`` (with its schema and the ranking of blocks), and the run folder's layout
(:class:`~trainers.jobs.run_folder.RunFolder`). Above :mod:`trainers.settings`; below
the training code, which runs jobs."""
