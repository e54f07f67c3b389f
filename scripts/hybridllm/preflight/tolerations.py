"""Taints and tolerations with the scheduler's matching rules (k8s.io/api core/v1
toleration.go ToleratesTaint): an empty effect matches every effect, `Exists` with an empty key
matches every taint, `Equal` (the default operator) needs the same value."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def tolerates(toleration: dict[str, Any], key: str, value: str, effect: str) -> bool:
    """Whether one toleration tolerates the taint key=value:effect."""
    if toleration.get("effect") and toleration["effect"] != effect:
        return False
    operator = toleration.get("operator") or "Equal"
    toleration_key = toleration.get("key") or ""
    if operator == "Exists":
        return toleration_key in ("", key)
    return toleration_key == key and str(toleration.get("value") or "") == value


def tolerates_taint(tolerations: Iterable[dict[str, Any]], taint: dict[str, Any]) -> bool:
    key, value, effect = str(taint.get("key", "")), str(taint.get("value") or ""), str(taint.get("effect", ""))
    return any(tolerates(t, key, value, effect) for t in tolerations)


def covers(actual: list[dict[str, Any]], declared: dict[str, Any]) -> bool:
    """Whether the tolerations `actual` tolerate every taint that the toleration `declared` does,
    so a DaemonSet installed with `actual` runs wherever one declared with `declared` would."""
    effects = (declared["effect"],) if declared.get("effect") else EFFECTS
    key = str(declared.get("key") or "")
    if (declared.get("operator") or "Equal") == "Exists":
        # Any value of the key (or any key at all): only an Exists toleration as wide covers it.
        return all(
            any((t.get("operator") == "Exists") and (t.get("key") or "") in ("", key)
                and (not t.get("effect") or t.get("effect") == effect) for t in actual)
            for effect in effects
        )
    value = str(declared.get("value") or "")
    return all(any(tolerates(t, key, value, effect) for t in actual) for effect in effects)


def uncovered(actual: list[dict[str, Any]], declared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in declared if not covers(actual, d)]


def describe(toleration: dict[str, Any]) -> str:
    """kubectl's short form: key=value:Effect, key:Effect (Exists), or * for a bare Exists."""
    key = toleration.get("key") or "*"
    if (toleration.get("operator") or "Equal") == "Equal":
        key = f"{key}={toleration.get('value') or ''}"
    effect = toleration.get("effect")
    return f"{key}:{effect}" if effect else key


def describe_taint(taint: dict[str, Any]) -> str:
    value = taint.get("value")
    return f"{taint.get('key')}{'=' + str(value) if value else ''}:{taint.get('effect')}"
