"""Talking to the apiserver: TLS, requests (httpx), watch streams, the error mapping."""
