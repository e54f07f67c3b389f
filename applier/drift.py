"""Whether a live InferenceSet already is what the chart asks for, so that the applier can leave it
alone: no node anchor, no wait for a node, no write that KAITO's webhook would refuse while the
path has no node (a gateway-only `helm upgrade` after a spot eviction, with spot capacity gone).

"Already is" means the desired object is a subset of the live one, in the fields the applier
writes (metadata labels, annotations and ownerReferences, and spec): the API server adds defaults
and other writers add labels, so equality would never hold. A subset test alone misses a field the
chart no longer sets (say an annotation dropped by a values change), which server-side apply would
remove; so every applied InferenceSet carries the digest of the object it was applied from, and
that digest is part of the desired annotations. A changed chart changes the digest, so the subset
test fails and the object is applied again.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

DIGEST_ANNOTATION = "hybrid-llm.io/applied-manifest-sha256"


def with_digest(obj: dict[str, Any]) -> dict[str, Any]:
    """The object with the digest of its own content (owner UID filled in) as an annotation."""
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    stamped = copy.deepcopy(obj)
    stamped["metadata"].setdefault("annotations", {})[DIGEST_ANNOTATION] = digest
    return stamped


def already_applied(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    if live is None or live["metadata"].get("deletionTimestamp"):
        return False
    want, have = desired["metadata"], live["metadata"]
    return (
        is_subset(want.get("labels") or {}, have.get("labels") or {})
        and is_subset(want.get("annotations") or {}, have.get("annotations") or {})
        # Missing means none: an ownerReference left on the live object (serving.keepOnUninstall
        # switched back to true) would let garbage collection delete what should be kept.
        and is_subset(want.get("ownerReferences") or [], have.get("ownerReferences") or [])
        and is_subset(desired.get("spec") or {}, live.get("spec") or {})
    )


def is_subset(want: Any, have: Any) -> bool:
    """Maps: every key of `want` is in `have` with a subset value. Lists: as long, item by item
    (lists are replaced whole by an apply). Anything else: equal."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and is_subset(v, have[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(is_subset(w, h) for w, h in zip(want, have))
    return want == have
