"""Keep torch's own diagnostics off the user's terminal while a frontend runs.

torch.export logs warnings and prints partial graphs, and ``ShapeProp`` prints a
traceback, straight to stderr when they fail. A failed capture is reported by the
frontend chain instead, in one line (with the traceback under ``--debug``).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

_NOISY_LOGGERS = (
    "torch.fx.experimental.symbolic_shapes",
    "torch.fx.passes.shape_prop",
    "torch._dynamo",
    "torch.export",
    "torch._export",
)


@contextlib.contextmanager
def quiet_torch() -> Iterator[None]:
    """Silence torch's frontend loggers and anything written to ``sys.stderr``."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
