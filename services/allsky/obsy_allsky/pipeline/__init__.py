"""The frame pipeline: each stage written once against a :class:`~obsy_allsky.backend.Backend`."""
