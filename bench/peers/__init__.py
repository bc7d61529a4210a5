"""Peer servers for bench/serving.py, each run from its own virtualenv (bench/peers/<name>.txt pins it)."""
