"""Grading of lights: measure a frame's stars and sky (:mod:`.measure`), judge it (:mod:`.judge`)."""
