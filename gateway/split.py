"""Weighted, sticky splits: which arm of a split route a request goes to.

Each arm owns a slice of the 64-bit number line, as wide as its share of the weights, in the
order the arms are listed. A request with the sticky value (a header's bytes as sent, or the API
key's name in UTF-8) lands where the value's BLAKE2b-64 hash falls, read as a big-endian integer;
one without it, at a random point. The hash has no salt and no state, so every process and
replica puts the same value on the same arm, and moving weight between neighbouring arms only
moves the values on the boundary that shifted. A key's point is worked out when the key is loaded.

Everything (the slices, each arm's backend chain) is worked out at start-up; a request costs one
scan of its headers, one hash and one bisection. Decisions are counted in plain integers, read by
the metrics at scrape time: a Prometheus counter's lock would cost more than the decision itself.
"""

from __future__ import annotations

from bisect import bisect_right
from fractions import Fraction
from hashlib import blake2b
from random import getrandbits
from typing import Generic, Mapping, Sequence, TypeVar

from starlette.datastructures import Headers

from .config import Route

_SPACE = 1 << 64
KEY = "key"
HEADER_PREFIX = "header:"

T = TypeVar("T")


def sticky_point(value: str | bytes) -> int:
    """Where a sticky value falls on [0, 2**64): the same on every machine and in every process
    (Python's own hash() is salted per process, so it cannot be used)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


def upper_bounds(weights: Sequence[float]) -> tuple[int, ...]:
    """Each arm's exclusive upper bound on [0, 2**64), from exact fractions so that every process
    computes the same bounds from the same config. The last bound is 2**64."""
    total = sum(Fraction(w) for w in weights)
    if total <= 0:
        raise ValueError("the weights must not all be 0")
    bounds, running = [], Fraction(0)
    for weight in weights:
        running += Fraction(weight)
        bounds.append(int(running * _SPACE / total))
    bounds[-1] = _SPACE
    return tuple(bounds)


class Split(Generic[T]):
    """One split route, ready for the request path. `chains[i]` is what the request gets when it
    lands on arm i: that arm's backend first, then the route's fallbacks without it."""

    __slots__ = ("arms", "chains", "counts", "_bounds", "_active", "_header", "_by_key")

    def __init__(self, route: Route, backends: Mapping[str, T]) -> None:
        assert route.split is not None
        self.arms: tuple[str, ...] = tuple(arm.backend for arm in route.split)
        chains = []
        for arm in self.arms:
            names = dict.fromkeys([arm, *route.fallbacks])  # ordered and without repeats
            chains.append(tuple(backends[name] for name in names))
        self.chains: tuple[tuple[T, ...], ...] = tuple(chains)
        # Requests that landed on each arm, counted by the router (one event loop, no lock needed).
        self.counts = [0] * len(self.arms)
        # Arms at weight 0 get no slice at all: drained, yet still fallbacks where listed.
        active = [i for i, arm in enumerate(route.split) if arm.weight > 0]
        self._active = tuple(active)
        self._bounds = upper_bounds([route.split[i].weight for i in active])
        sticky = route.sticky_by or ""
        self._by_key = sticky == KEY
        # Compared with the raw header names, which the HTTP server has lower-cased already.
        self._header = (sticky[len(HEADER_PREFIX):].lower().encode("latin-1")
                        if sticky.startswith(HEADER_PREFIX) else None)

    def pick(self, headers: Headers, key_point: int) -> int:
        """The index of the arm this request lands on; `key_point` is the API key's sticky point."""
        if len(self._active) == 1:
            return self._active[0]
        if self._by_key:
            point = key_point
        else:
            point = -1
            if self._header is not None:
                for name, value in headers.raw:
                    if name == self._header:
                        if value:  # an empty header is no sticky value
                            point = sticky_point(value)
                        break
            if point < 0:
                point = getrandbits(64)
        return self._active[bisect_right(self._bounds, point)]

    def shares(self) -> dict[str, float]:
        """Each arm's configured share of the traffic, 0 for a drained arm."""
        shares = dict.fromkeys(self.arms, 0.0)
        lower = 0
        for index, bound in zip(self._active, self._bounds):
            shares[self.arms[index]] = (bound - lower) / _SPACE
            lower = bound
        return shares
