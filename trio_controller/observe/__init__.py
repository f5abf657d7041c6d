"""What an operator sees: logs (and, to come, metrics and health probes)."""
