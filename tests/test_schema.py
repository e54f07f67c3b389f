"""values.schema.json is strict: typos, wrong types and out-of-range values fail at template time."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Render
from schema_rejection import assert_schema_rejects

# (id, overrides, JSON pointer the schema refuses, the key Helm's message must name). The pointer is
# checked with Python's jsonschema; of Helm's own message only what Helm 3 and Helm 4 both say.
REJECTED: list[tuple[str, dict[str, Any], str, str]] = [
    ("typo-top-level", {"nodePool": {"mode": "nap"}}, "/", "nodePool"),
    ("typo-in-path", {"paths": {"customer": {"replica": 2}}}, "/paths/customer", "replica"),
    ("typo-in-vllm", {"paths": {"batch": {"vllm": {"maxModelLength": 8192}}}}, "/paths/batch/vllm", "maxModelLength"),
    ("unknown-path", {"paths": {"interactive": {"enabled": True}}}, "/paths", "interactive"),
    ("wrong-type", {"paths": {"customer": {"replicas": "two"}}}, "/paths/customer/replicas", "replicas"),
    ("capacity-enum", {"paths": {"batch": {"capacityType": "preemptible"}}}, "/paths/batch/capacityType", "capacityType"),
    ("mode-enum", {"nodePools": {"mode": "karpenter"}}, "/nodePools/mode", "mode"),
    ("model-len-over-limit", {"paths": {"customer": {"vllm": {"maxModelLen": 262144}}}},
     "/paths/customer/vllm/maxModelLen", "maxModelLen"),
    ("gpu-memory-over-one", {"paths": {"customer": {"vllm": {"gpuMemoryUtilization": 1.2}}}},
     "/paths/customer/vllm/gpuMemoryUtilization", "gpuMemoryUtilization"),
    ("token-in-values", {"modelAccess": {"hfToken": "hf_abc"}}, "/modelAccess", "hfToken"),
    ("latest-tag", {"modelAccess": {"keyVault": {"syncer": {"image": {"tag": "latest"}}}}},
     "/modelAccess/keyVault/syncer/image/tag", "tag"),
    ("aks-pool-name", {"paths": {"batch": {"nodePool": {"aksPoolName": "LLM-Batch-Pool"}}}},
     "/paths/batch/nodePool/aksPoolName", "aksPoolName"),
    ("bad-duration", {"paths": {"batch": {"nodePool": {"consolidateAfter": "ten minutes"}}}},
     "/paths/batch/nodePool/consolidateAfter", "consolidateAfter"),
    ("http-endpoint", {"azureOpenAI": {"endpoint": "http://insecure.example.com"}}, "/azureOpenAI/endpoint", "endpoint"),
    # images: a digest is sha256 and 64 hex digits; the pull policy is one Kubernetes knows, or empty
    ("short-digest", {"gateway": {"image": {"digest": "sha256:abc"}}}, "/gateway/image/digest", "digest"),
    ("digest-without-algorithm", {"serving": {"nodeAnchor": {"image": {"digest": "ee6521f290b2168b6e0935a181d4cff9"}}}},
     "/serving/nodeAnchor/image/digest", "digest"),
    ("pull-policy-enum", {"gateway": {"test": {"image": {"pullPolicy": "Sometimes"}}}},
     "/gateway/test/image/pullPolicy", "pullPolicy"),
    # pull secrets are Kubernetes references, not bare names
    ("pull-secret-as-string", {"imagePullSecrets": ["acr-pull"]}, "/imagePullSecrets/0", "imagePullSecrets"),
    ("pull-secret-typo", {"gateway": {"imagePullSecrets": [{"secretName": "acr-pull"}]}},
     "/gateway/imagePullSecrets/0", "secretName"),
    # the gateway's scheduling knobs take Kubernetes shapes
    ("node-selector-value-type", {"gateway": {"nodeSelector": {"pool": 1}}}, "/gateway/nodeSelector/pool", "pool"),
    ("toleration-operator", {"gateway": {"tolerations": [{"key": "a", "operator": "In"}]}},
     "/gateway/tolerations/0/operator", "operator"),
    ("affinity-typo", {"gateway": {"affinity": {"podAntiAfinity": {}}}}, "/gateway/affinity", "podAntiAfinity"),
    ("pod-annotation-value-type", {"gateway": {"podAnnotations": {"prometheus.io/scrape": True}}},
     "/gateway/podAnnotations/prometheus.io~1scrape", "prometheus.io"),
    # extraEnv: a name, and a value or one valueFrom source, never both
    ("env-value-and-source", {"gateway": {"extraEnv": [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}},
     "/gateway/extraEnv/0", "extraEnv"),
    ("env-without-name", {"gateway": {"extraEnv": [{"value": "x"}]}}, "/gateway/extraEnv/0", "name"),
    ("env-two-sources", {"gateway": {"extraEnv": [{"name": "A", "valueFrom": {"fieldRef": {}, "secretKeyRef": {}}}]}},
     "/gateway/extraEnv/0/valueFrom", "valueFrom"),
    ("env-number-value", {"gateway": {"extraEnv": [{"name": "WORKERS", "value": 4}]}}, "/gateway/extraEnv/0/value", "value"),
    # security overrides can change IDs and add hardening, never weaken the floor
    ("privileged-gateway", {"gateway": {"securityContext": {"privileged": True}}},
     "/gateway/securityContext/privileged", "privileged"),
    ("privilege-escalation", {"gateway": {"securityContext": {"allowPrivilegeEscalation": True}}},
     "/gateway/securityContext/allowPrivilegeEscalation", "allowPrivilegeEscalation"),
    ("root-user", {"gateway": {"podSecurityContext": {"runAsUser": 0}}}, "/gateway/podSecurityContext/runAsUser", "runAsUser"),
    ("run-as-root-allowed", {"gateway": {"securityContext": {"runAsNonRoot": False}}},
     "/gateway/securityContext/runAsNonRoot", "runAsNonRoot"),
    ("unconfined-seccomp", {"gateway": {"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}}},
     "/gateway/podSecurityContext/seccompProfile/type", "type"),
    ("security-context-typo", {"gateway": {"securityContext": {"readOnlyRootFileSystem": True}}},
     "/gateway/securityContext", "readOnlyRootFileSystem"),
]


@pytest.mark.parametrize("overrides,pointer,key", [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_schema_rejects(render: Render, overrides: dict[str, Any], pointer: str, key: str) -> None:
    assert_schema_rejects(render, "hybrid", overrides, pointer, key)


def test_documented_schema_entries_for_the_new_knobs() -> None:
    """The gateway knobs, the pull secrets and the image fields say what they take."""
    import json

    from hybridllm.layout import CHART_DIR

    schema = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
    gateway = schema["properties"]["gateway"]["properties"]
    definitions = schema["definitions"]
    for key in ("podLabels", "podAnnotations", "imagePullSecrets", "nodeSelector", "tolerations", "extraEnv"):
        assert gateway[key].get("description"), key
    for key in ("affinity", "podSecurityContext", "containerSecurityContext", "envVar", "imagePullSecrets",
                "podToleration", "seccompProfile"):
        assert definitions[key].get("description"), key
    for key in ("tag", "digest", "pullPolicy"):
        assert definitions["image"]["properties"][key].get("description"), key
    assert schema["properties"]["imagePullSecrets"].get("description")


def test_schema_covers_every_default_value() -> None:
    import json

    from hybridllm.layout import CHART_DIR
    from hybridllm.rendering import chart_defaults

    schema = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        return schema["definitions"][ref.rsplit("/", 1)[1]] if ref else node

    def walk(values: Any, node: dict[str, Any], at: str) -> list[str]:
        node = resolve(node)
        missing = []
        if isinstance(values, dict) and node.get("additionalProperties") is False:
            for key, value in values.items():
                if key not in node.get("properties", {}):
                    missing.append(f"{at}.{key}")
                else:
                    missing += walk(value, node["properties"][key], f"{at}.{key}")
        return missing

    assert walk(chart_defaults(), schema, "") == []
