"""B_opt without a full sweep: successive halving (:mod:`~trainers.selection.halving`), a
gradient-norm ranker (:mod:`~trainers.selection.gradnorm`) and Ray Tune's ASHA
(:mod:`~trainers.selection.asha`), sharing their rungs and ranking
(:mod:`~trainers.selection.rungs`). Above :mod:`trainers.execution`: a selector decides
which tasks run, and an executor runs them."""
