"""What an operator sees: logs (log.py), Prometheus metrics (metrics.py, from stats.py), health
probes (health.py), and the small Trio HTTP server that serves the last two (server.py)."""
