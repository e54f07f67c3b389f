"""The gateway's YAML config: backends, routes, routing rules, public models and keys.

Loaded and checked once at start-up. Every problem is reported as `<file>: <field>: <what>`,
so a bad ConfigMap is fixed from the pod log alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

NonNegative = Annotated[float, Field(ge=0)]


class ConfigError(Exception):
    """A config problem, reported without a traceback."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Pricing(_Strict):
    """USD per 1M tokens. Self-hosted backends default to 0: their cost is the node, not the token."""

    input_per_1m: NonNegative = Field(0.0, alias="inputPer1M")
    cached_input_per_1m: NonNegative | None = Field(None, alias="cachedInputPer1M")
    output_per_1m: NonNegative = Field(0.0, alias="outputPer1M")


class CircuitSettings(_Strict):
    failure_threshold: int = Field(5, ge=1, alias="failureThreshold")
    open_seconds: float = Field(30.0, gt=0, alias="openSeconds")


class _BackendBase(_Strict):
    max_in_flight: int = Field(64, ge=1, alias="maxInFlight")
    connect_timeout_seconds: float = Field(2.0, gt=0, alias="connectTimeoutSeconds")
    first_byte_timeout_seconds: float = Field(60.0, gt=0, alias="firstByteTimeoutSeconds")
    stream_idle_timeout_seconds: float = Field(60.0, gt=0, alias="streamIdleTimeoutSeconds")
    request_timeout_seconds: float = Field(600.0, gt=0, alias="requestTimeoutSeconds")
    circuit: CircuitSettings = CircuitSettings()
    pricing: Pricing = Pricing()


class VllmBackend(_BackendBase):
    kind: Literal["vllm"]
    base_url: str = Field(alias="baseURL", pattern=r"^https?://[^/]+(/.*)?$")
    model: str = Field(min_length=1, description="the model name vLLM serves (the InferenceSet name under KAITO)")


class ApiKeyAuth(_Strict):
    type: Literal["apiKey"]
    api_key_env: str | None = Field(None, alias="apiKeyEnv")
    api_key_file: str | None = Field(None, alias="apiKeyFile")

    @model_validator(mode="after")
    def _one_source(self) -> "ApiKeyAuth":
        if (self.api_key_env is None) == (self.api_key_file is None):
            raise ValueError("set exactly one of apiKeyEnv or apiKeyFile")
        return self


class EntraAuth(_Strict):
    type: Literal["entra"]
    client_id: str | None = Field(None, alias="clientId")
    scope: str = "https://cognitiveservices.azure.com/.default"
    refresh_margin_seconds: float = Field(300.0, gt=0, alias="refreshMarginSeconds")


class AzureOpenAIBackend(_BackendBase):
    kind: Literal["azure-openai"]
    endpoint: str = Field(pattern=r"^https?://[^/]+/?$")
    deployment: str = Field(min_length=1)
    api_mode: Literal["v1", "deployments"] = Field("v1", alias="apiMode")
    api_version: str = Field("2024-10-21", alias="apiVersion")
    auth: Annotated[Union[ApiKeyAuth, EntraAuth], Field(discriminator="type")]


Backend = Annotated[Union[VllmBackend, AzureOpenAIBackend], Field(discriminator="kind")]


class SplitArm(_Strict):
    backend: str = Field(min_length=1)
    # A share of the route's traffic, relative to the other arms' weights; 0 drains the arm.
    weight: NonNegative


class Route(_Strict):
    """One primary backend, or weighted `split` arms, then ordered fallbacks."""

    primary: str | None = Field(None, min_length=1)
    split: list[SplitArm] | None = Field(None, min_length=1)
    # What keeps a user on one arm: `header:<name>` (that request header's value) or `key` (the
    # API key's name). Requests without it, or a split without stickyBy, are spread by weight.
    sticky_by: str | None = Field(None, alias="stickyBy", pattern=r"^(key|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$")
    fallbacks: list[str] = []
    # Wait up to this long for the primary (scaled to zero, evicted, full) before the fallbacks.
    queue_seconds: float = Field(0.0, ge=0, le=600, alias="queueSeconds")
    # Traffic classes this route serves: a key limited to other classes may not reach it, by
    # any rule. Unset: the classes whose routing.classRoutes entry names this route (none: any key).
    classes: list[str] | None = None

    @model_validator(mode="after")
    def _primary_or_split(self) -> "Route":
        if (self.primary is None) == (self.split is None):
            raise ValueError("set either primary (one backend) or split (weighted arms), not both and not neither")
        if self.split is not None:
            arms = [arm.backend for arm in self.split]
            repeated = sorted({arm for arm in arms if arms.count(arm) > 1})
            if repeated:
                raise ValueError(f"split names backend {', '.join(map(repr, repeated))} more than once: "
                                 "give each backend one arm and one weight")
            if all(arm.weight == 0 for arm in self.split):
                raise ValueError("every split weight is 0, so no arm would get traffic: give at least one arm "
                                 "a weight above 0 (an arm at 0 is drained)")
        elif self.sticky_by is not None:
            raise ValueError("stickyBy only applies to a split: remove it, or replace primary with split arms")
        return self

    @property
    def backends(self) -> list[str]:
        """Every backend the route names: its primary or split arms, then its fallbacks."""
        first = [self.primary] if self.primary is not None else [arm.backend for arm in self.split or ()]
        return [*first, *self.fallbacks]


RuleName = Literal["backendHeader", "classHeader", "structuredOutput", "model"]


class Routing(_Strict):
    backend_header: str = Field("x-llm-backend", alias="backendHeader")
    class_header: str = Field("x-llm-class", alias="classHeader")
    class_routes: dict[str, str] = Field(default_factory=dict, alias="classRoutes")
    structured_output_route: str | None = Field(None, alias="structuredOutputRoute")
    default_route: str = Field(alias="defaultRoute")
    order: list[RuleName] = ["backendHeader", "classHeader", "structuredOutput", "model"]
    max_retry_after_seconds: float = Field(2.0, ge=0, alias="maxRetryAfterSeconds")


class PublicModel(_Strict):
    route: str | None = None
    # The name vLLM serves this model under, when it is not the backend's model: a LoRA adapter.
    # Azure OpenAI backends still get their deployment.
    vllm_model: str | None = Field(None, alias="vllmModel", min_length=1)


class Auth(_Strict):
    enabled: bool
    keys_file: str | None = Field(None, alias="keysFile")
    # How often the keys file is checked for changes (a rotated or revoked key in the Secret).
    reload_seconds: float = Field(10.0, gt=0, le=3600, alias="reloadSeconds")

    @model_validator(mode="after")
    def _keys_when_enabled(self) -> "Auth":
        if self.enabled and not self.keys_file:
            raise ValueError("auth.enabled is true but keysFile is not set")
        return self


class Server(_Strict):
    """Limits on what clients send and upstreams answer, and the shutdown grace."""

    max_header_bytes: int = Field(64 * 1024, ge=4096, le=1024 * 1024, alias="maxHeaderBytes")
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024, alias="maxBodyBytes")
    # Time a client has to send a request's headers, and again its body.
    upload_timeout_seconds: float = Field(30.0, gt=0, le=3600, alias="uploadTimeoutSeconds")
    # Largest non-streaming answer, or single stream event, read from an upstream.
    max_upstream_body_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024, alias="maxUpstreamBodyBytes")
    max_request_id_length: int = Field(128, ge=16, le=1024, alias="maxRequestIdLength")
    shutdown_grace_seconds: float = Field(30.0, ge=0, alias="shutdownGraceSeconds")


class GatewayConfig(_Strict):
    server: Server = Server()
    auth: Auth
    backends: dict[str, Backend]
    routes: dict[str, Route]
    routing: Routing
    models: dict[str, PublicModel]

    def route_classes(self, route: str) -> frozenset[str]:
        """The traffic classes a route serves (empty: it serves none, and any key may use it)."""
        explicit = self.routes[route].classes
        if explicit is not None:
            return frozenset(explicit)
        return frozenset(c for c, r in self.routing.class_routes.items() if r == route)

    @model_validator(mode="after")
    def _references_resolve(self) -> "GatewayConfig":
        problems = []
        for name, route in self.routes.items():
            for backend in route.backends:
                if backend not in self.backends:
                    problems.append(f"routes.{name} names backend {backend!r}, which is not in backends")
            if route.sticky_by == "key" and not self.auth.enabled:
                problems.append(f"routes.{name}.stickyBy is key, but auth.enabled is false: every request "
                                "would have the same key and land on one arm. Use stickyBy: header:<name>, "
                                "or turn auth on")
        named = {
            "routing.defaultRoute": self.routing.default_route,
            "routing.structuredOutputRoute": self.routing.structured_output_route,
            **{f"routing.classRoutes.{c}": r for c, r in self.routing.class_routes.items()},
            **{f"models.{m}.route": p.route for m, p in self.models.items()},
        }
        for field, route in named.items():
            if route is not None and route not in self.routes:
                problems.append(f"{field} names route {route!r}, which is not in routes")
        for name, route in self.routes.items():
            for traffic_class in route.classes or ():
                if traffic_class not in self.routing.class_routes:
                    problems.append(f"routes.{name}.classes names class {traffic_class!r}, "
                                    "which is not in routing.classRoutes")
        if not self.models:
            problems.append("models is empty: clients need at least one public model name")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _field(loc: tuple) -> str:
    """Dotted field path as the user wrote it. Pydantic inserts the union tag after a backend's
    name and after `auth` (backends.x.vllm.baseURL); those tags are dropped by position, since a
    backend may well be named after its kind."""
    parts = list(loc)
    if len(parts) > 2 and parts[0] == "backends" and parts[2] in ("vllm", "azure-openai"):
        del parts[2]
    for index in range(len(parts) - 1, 0, -1):
        if parts[index - 1] == "auth" and parts[index] in ("apiKey", "entra") and parts[0] == "backends":
            del parts[index]
    return ".".join(str(part) for part in parts)


def load(path: str | Path) -> GatewayConfig:
    where = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the top level must be a mapping with backends, routes, routing and models")
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = _field(error["loc"]) or "(top level)"
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {field}: {message}")
        raise ConfigError("\n".join(lines)) from None
