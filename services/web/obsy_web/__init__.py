"""OBSY web service: stores everything from the bus and serves the REST API and the dashboard."""
