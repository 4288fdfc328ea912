"""Results for people: the console's tables and progress bars, and the figures. Reads
results; runs nothing."""
