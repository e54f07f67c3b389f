"""Preflight for a live cluster: what a values profile needs (read from its render) compared with
what the cluster has, one line per check with the fix. scripts/preflight.py is the command."""
