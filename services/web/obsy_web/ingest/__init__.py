"""The ingestor: everything on the bus, stored in the database."""
