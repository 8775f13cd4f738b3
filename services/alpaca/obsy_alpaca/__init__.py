"""OBSY Alpaca service: OBSY's safety verdict and weather as ASCOM Alpaca devices."""
