"""Test helpers shared by the connection-layer tests."""
