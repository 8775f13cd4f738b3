"""OBSY weather service: reads weather sources and publishes normalised readings and a safety verdict."""
