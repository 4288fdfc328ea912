"""Blocks in other libraries' training loops (docs/integrations.md): each module imports its
library on its own, so graphblocks needs none of them."""
