"""OBSY scheduler service: plans the night from targets and exposure plans and writes Ekos schedule files."""
