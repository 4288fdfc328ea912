"""Fine-tuning on graphblocks partitions (filled by later issues).

``trainers`` may import graphblocks' public API; graphblocks never imports trainers.
"""
