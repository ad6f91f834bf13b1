"""Locate: the region a point lies in. Pure; the index is built once per rule set.

A point goes to the deepest region whose polygon covers it. Candidates come from a shapely
STRtree over the polygons' boxes, then an exact covers-test on prepared geometry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry


class RegionIndex:
    def __init__(self, polygons: Mapping[str, BaseGeometry], depth: Mapping[str, int]) -> None:
        self._ids = list(polygons)
        self._geoms = [polygons[i] for i in self._ids]
        for geom in self._geoms:
            shapely.prepare(geom)
        self._depth = [depth.get(i, 0) for i in self._ids]
        self._tree = STRtree(self._geoms) if self._geoms else None

    def __len__(self) -> int:
        return len(self._ids)

    def place(self, lat: float, lon: float) -> str | None:
        """The deepest region covering (lat, lon), or None."""
        if self._tree is None:
            return None
        point = shapely.Point(lon, lat)
        best: str | None = None
        best_depth = -1
        for i in self._tree.query(point, predicate="covered_by"):
            idx = int(i)
            if self._depth[idx] > best_depth:
                best, best_depth = self._ids[idx], self._depth[idx]
        return best

    def place_many(self, points: Sequence[tuple[float, float]]) -> list[str | None]:
        """`place` for many (lat, lon) points in one index query: a batch of reports pays
        shapely's per-call overhead once, not per point."""
        out: list[str | None] = [None] * len(points)
        if self._tree is None or not points:
            return out
        coords = np.array([(lon, lat) for lat, lon in points], dtype=float)
        found = self._tree.query(shapely.points(coords), predicate="covered_by")
        best_depth = [-1] * len(points)
        for i, j in zip(found[0].tolist(), found[1].tolist(), strict=True):
            if self._depth[j] > best_depth[i]:
                out[i], best_depth[i] = self._ids[j], self._depth[j]
        return out
