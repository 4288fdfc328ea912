"""Where jobs run: a task of a prepared run (:mod:`~trainers.execution.tasks`), run in
this process (:mod:`~trainers.execution.local`) or as Ray tasks
(:mod:`~trainers.execution.ray_tasks`, which alone imports Ray). Above
:mod:`trainers.training`; below the selectors, which decide what runs."""
