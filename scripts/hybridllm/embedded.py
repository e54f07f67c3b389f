"""Objects a chart object carries for a later apply. In the byo node pool modes the chart does not
create the InferenceSets itself: a ConfigMap annotated `hybrid-llm.io/embedded-manifests: <keys>`
holds them (and the node anchors) under those data keys, and the apply-serving Job applies them
once KAITO will admit them. Renders and the validator treat those documents as objects of the
release, marked as embedded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import yaml

EMBEDDED_ANNOTATION = "hybrid-llm.io/embedded-manifests"


@dataclass(frozen=True)
class EmbeddedDocument:
    key: str  # the ConfigMap data key
    obj: Any  # the parsed document; None when `error` says why it could not be read
    error: str | None = None

    def origin(self, carrier_name: str) -> str:
        return f"ConfigMap/{carrier_name} data.{self.key}"


def embedded_documents(obj: Any) -> Iterator[EmbeddedDocument]:
    """The documents a ConfigMap carries under the keys its annotation lists. Any input is
    accepted: what cannot be read comes back with an error, never as an exception."""
    if not isinstance(obj, dict) or obj.get("kind") != "ConfigMap":
        return
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    annotations = metadata.get("annotations") if isinstance(metadata.get("annotations"), dict) else {}
    listed = annotations.get(EMBEDDED_ANNOTATION)
    if not listed:
        return
    data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
    for key in (k.strip() for k in str(listed).split(",")):
        if not key:
            continue
        text = data.get(key)
        if not isinstance(text, str):
            yield EmbeddedDocument(key, None, f"{EMBEDDED_ANNOTATION} names data key {key!r}, which the ConfigMap does not have")
            continue
        try:
            documents = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            yield EmbeddedDocument(key, None, f"data key {key!r} is not valid YAML: {exc}")
            continue
        for document in documents:
            yield EmbeddedDocument(key, document)
