"""Procedural data sets (no download needed): street scenes and articulated people."""
