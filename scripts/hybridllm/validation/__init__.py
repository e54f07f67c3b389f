"""Offline validation of rendered manifests: Kubernetes schemas for each listed version, the real
CRD schemas, policy rules, and cross-object references. Entry point: scripts/validate.py."""
