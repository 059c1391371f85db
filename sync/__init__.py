"""Talking to the central server, and the reference server."""
