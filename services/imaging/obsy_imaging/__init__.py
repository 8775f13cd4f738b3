"""OBSY imaging service."""
