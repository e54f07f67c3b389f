"""Choosing a route for a request. Rules run in the configured order and the first match wins:

  backendHeader     x-llm-backend: <backend> pins one backend (A/B tests, incidents); keys need backendOverride
  classHeader       x-llm-class: customer|batch picks that class's route; keys need the class
  structuredOutput  response_format.type == json_schema goes to the structured-output route
  model             the public model's own route (an alias such as `code`)
and otherwise the default route. A route is a primary backend, or weighted split arms (split.py
picks one per request, sticky by a header or the key), then ordered fallbacks; backends the key
may not use are left out. Whichever rule picked it, the route must serve a traffic class the key
may use (routes that serve no class are open to every key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers

from .backends import UpstreamBackend
from .config import GatewayConfig
from .keys import ANY, ApiKey
from .split import Split


@dataclass(frozen=True)
class Decision:
    route: str
    candidates: tuple[UpstreamBackend, ...]
    queue_seconds: float = 0.0
    arm: str = ""  # on a split route, the arm the request landed on (before any fallback)


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
            name: tuple(backends[b] for b in route.backends)
            for name, route in config.routes.items() if route.split is None
        }
        self._splits = {name: Split(route, backends) for name, route in config.routes.items() if route.split}
        self._pinned = {name: (backend,) for name, backend in backends.items()}
        self._queue = {name: route.queue_seconds for name, route in config.routes.items()}
        self._route_classes = {name: config.route_classes(name) for name in config.routes}

    def decide(self, headers: Headers, payload: dict[str, Any], model: str, key: ApiKey) -> Decision | Refusal:
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
        split = self._splits.get(route)
        if split is None:
            chain, arm = self._routes[route], ""
        else:
            index = split.pick(headers, key.sticky_point)
            chain, arm = split.chains[index], split.arms[index]
        candidates = tuple(b for b in chain if key.may_use_backend(b.name))
        if not candidates:
            return Refusal(403, f"this key may use none of the backends of route {route!r}", "backend_not_allowed")
        if split is not None:
            split.counts[index] += 1
        # Queueing only makes sense while the primary (or the arm) itself may still serve this key.
        queue = self._queue[route] if candidates[0] is chain[0] else 0.0
        return Decision(route, candidates, queue, arm)

    def reachable(self) -> dict[str, tuple[str, ...]]:
        """The backends each route (pinned ones included) may send a request to."""
        routes = {name: tuple(b.name for b in chain) for name, chain in self._routes.items()}
        for name, split in self._splits.items():
            routes[name] = tuple(dict.fromkeys(b.name for chain in split.chains for b in chain))
        for name, (backend,) in self._pinned.items():
            routes[f"pinned:{name}"] = (backend.name,)
        return routes

    def split_arms(self) -> dict[str, dict[str, float]]:
        """Each split route's arms and their configured shares."""
        return {name: split.shares() for name, split in self._splits.items()}

    def split_counts(self) -> list[tuple[str, str, int]]:
        """(route, arm, requests that landed on it) for every arm of every split route."""
        return [(name, arm, count) for name, split in self._splits.items()
                for arm, count in zip(split.arms, split.counts)]

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
