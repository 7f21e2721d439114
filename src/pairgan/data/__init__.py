"""Data: image I/O, paired transforms, data sets, checks and synthetic generators."""
