"""The informer half: reflector (list, then watch), backoff, Python event handlers,
cache snapshots."""
