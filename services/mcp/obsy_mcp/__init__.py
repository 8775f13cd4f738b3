"""OBSY mcp service: the master control program: opens, observes and closes the observatory, failing safe."""
