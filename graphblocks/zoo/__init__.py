"""Run the analyzer over whole model zoos and report coverage, agreement and timings."""
