"""Channels: the ways a request reaches the people who decide it."""
