"""Locate: the region a point lies in. Pure; the index is built once per rule set.

A point goes to the deepest region whose polygon covers it. A few dozen polygons are all
tested at once, vectorised; more are narrowed by a shapely STRtree over their boxes first,
then given an exact covers-test on prepared geometry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

# Up to this many polygons every point is tested against all of them in one vectorised
# call (a few microseconds for a dozen regions); beyond it an STRtree narrows them first.
SMALL = 64


class RegionIndex:
    def __init__(
        self,
        polygons: Mapping[str, BaseGeometry],
        depth: Mapping[str, int],
        *,
        small: int = SMALL,
    ) -> None:
        self._ids = list(polygons)
        self._geoms = [polygons[i] for i in self._ids]
        for geom in self._geoms:
            shapely.prepare(geom)
        self._depth = [depth.get(i, 0) for i in self._ids]
        self._all = np.array(self._geoms, dtype=object)[:, None] if self._geoms else None
        self._depths = np.array(self._depth)[:, None]
        many = len(self._geoms) > small
        self._tree = STRtree(self._geoms) if many else None

    def __len__(self) -> int:
        return len(self._ids)

    def place(self, lat: float, lon: float) -> str | None:
        """The deepest region covering (lat, lon), or None."""
        return (
            self.place_many([(lat, lon)])[0] if self._tree is None else self._place_tree(lat, lon)
        )

    def _place_tree(self, lat: float, lon: float) -> str | None:
        assert self._tree is not None
        found = self._tree.query(shapely.Point(lon, lat), predicate="covered_by").tolist()
        # The deepest; on a border between regions of one depth, the one listed first.
        best = min(found, key=lambda j: (-self._depth[j], j), default=None)
        return self._ids[best] if best is not None else None

    def place_many(self, points: Sequence[tuple[float, float]]) -> list[str | None]:
        """`place` for many (lat, lon) points in one call: a batch of reports pays
        shapely's per-call overhead once, not per point."""
        if not points or self._all is None:
            return [None] * len(points)
        if self._tree is None:
            # Regions x points: does each region's polygon cover each point (its edge too)?
            # argmax takes the first of the deepest: on a border, the region listed first.
            lat = np.fromiter((p[0] for p in points), float, len(points))
            lon = np.fromiter((p[1] for p in points), float, len(points))
            scored = np.where(shapely.intersects_xy(self._all, lon, lat), self._depths, -1)
            first, top = scored.argmax(axis=0).tolist(), scored.max(axis=0).tolist()
            return [self._ids[b] if t >= 0 else None for b, t in zip(first, top, strict=True)]
        coords = np.array([(lon, lat) for lat, lon in points], dtype=float)
        found = self._tree.query(shapely.points(coords), predicate="covered_by")
        best: list[tuple[int, int] | None] = [None] * len(points)
        for i, j in zip(found[0].tolist(), found[1].tolist(), strict=True):
            key = (-self._depth[j], j)  # as above: the deepest, then the one listed first
            if (now := best[i]) is None or key < now:
                best[i] = key
        return [self._ids[b[1]] if b is not None else None for b in best]
