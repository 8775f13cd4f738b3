"""Night products made from the stored frames: keogram, star trails."""
