"""OBSY sky simulator: INDI camera drivers that render the real sky, with clouds on command."""
