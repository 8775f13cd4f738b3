"""OBSY imaging service: frames from the capture program into a repository (docs/imaging.md)."""
