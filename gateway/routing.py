"""Choosing a route for a request. Rules run in the configured order and the first match wins:

  backendHeader     x-llm-backend: <backend> pins one backend (A/B tests, incidents); keys need backendOverride
  classHeader       x-llm-class: customer|batch picks that class's route; keys need the class
  structuredOutput  response_format.type == json_schema goes to the structured-output route
  model             the public model's own route (an alias such as `code`)
and otherwise the default route. A route is a primary backend and ordered fallbacks; backends the
key may not use are left out. Whichever rule picked it, the route must serve a traffic class the
key may use (routes that serve no class are open to every key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .backends import UpstreamBackend
from .config import GatewayConfig
from .keys import ANY, ApiKey


@dataclass(frozen=True)
class Decision:
    route: str
    candidates: tuple[UpstreamBackend, ...]
    queue_seconds: float = 0.0


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    code: str


class Router:
    def __init__(self, config: GatewayConfig, backends: dict[str, UpstreamBackend]) -> None:
        routing = config.routing
        self._backends = backends
        self._order = tuple(routing.order)
        self._backend_header = routing.backend_header
        self._class_header = routing.class_header
        self._class_routes = dict(routing.class_routes)
        self._structured_route = routing.structured_output_route
        self._default_route = routing.default_route
        self._model_routes = {name: model.route for name, model in config.models.items()}
        self._routes = {
            name: tuple(backends[b] for b in (route.primary, *route.fallbacks))
            for name, route in config.routes.items()
        }
        self._pinned = {name: (backend,) for name, backend in backends.items()}
        self._queue = {name: route.queue_seconds for name, route in config.routes.items()}
        self._route_classes = {name: config.route_classes(name) for name in config.routes}

    def decide(self, headers: Mapping[str, str], payload: dict[str, Any], model: str, key: ApiKey) -> Decision | Refusal:
        route = None
        for rule in self._order:
            if rule == "backendHeader":
                pinned = headers.get(self._backend_header)
                if pinned:
                    return self._pin(pinned, key)
            elif rule == "classHeader":
                traffic_class = headers.get(self._class_header)
                if traffic_class:
                    if traffic_class not in self._class_routes:
                        known = ", ".join(sorted(self._class_routes)) or "none configured"
                        return Refusal(400, f"unknown {self._class_header} {traffic_class!r}; known: {known}",
                                       "unknown_class")
                    if not key.may_use_class(traffic_class):
                        return Refusal(403, f"this key may not send {self._class_header}: {traffic_class}"
                                       + self._class_hint(key), "class_not_allowed")
                    route = self._class_routes[traffic_class]
            elif rule == "structuredOutput":
                response_format = payload.get("response_format")
                if (self._structured_route and isinstance(response_format, dict)
                        and response_format.get("type") == "json_schema"):
                    route = self._structured_route
            elif rule == "model":
                route = self._model_routes.get(model)
            if route is not None:
                break
        route = route or self._default_route
        classes = self._route_classes[route]
        if classes and ANY not in key.classes and not classes & key.classes:
            return Refusal(403, f"this key may not use route {route!r}, which serves traffic class "
                           f"{', '.join(sorted(classes))}" + self._class_hint(key), "class_not_allowed")
        candidates = tuple(b for b in self._routes[route] if key.may_use_backend(b.name))
        if not candidates:
            return Refusal(403, f"this key may use none of the backends of route {route!r}", "backend_not_allowed")
        # Queueing only makes sense while the primary itself may still serve this key.
        queue = self._queue[route] if candidates[0] is self._routes[route][0] else 0.0
        return Decision(route, candidates, queue)

    def _class_hint(self, key: ApiKey) -> str:
        usable = sorted(c for c in key.classes if c in self._class_routes)
        if not usable:
            return "; the key may use no traffic class of this gateway"
        return f"; the key may use {', '.join(usable)}: send {self._class_header}: {usable[0]}"

    def _pin(self, backend: str, key: ApiKey) -> Decision | Refusal:
        if not key.backend_override:
            return Refusal(403, f"this key may not choose a backend with {self._backend_header}", "override_not_allowed")
        if backend not in self._pinned:
            return Refusal(400, f"unknown backend {backend!r} in {self._backend_header}; known: "
                           + ", ".join(sorted(self._pinned)), "unknown_backend")
        if not key.may_use_backend(backend):
            return Refusal(403, f"this key may not use backend {backend!r}", "backend_not_allowed")
        return Decision(f"pinned:{backend}", self._pinned[backend])
