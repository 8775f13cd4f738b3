"""OBSY imaging service: frames from the capture program into a repository, graded and calibrated (docs/imaging.md)."""
