"""What an operator sees: logs (log.py), Prometheus metrics (metrics.py, from stats.py), health
probes (health.py), and the HTTP(S) server stack on hypercorn (serving.py) that serves the
last two and the admission and conversion webhooks (runtime/webhooks/)."""
