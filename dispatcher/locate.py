"""Locate: the region a point lies in. Pure; the index is built once per rule set.

A point goes to the deepest region whose polygon covers it. Candidates come from a shapely
STRtree over the polygons' boxes, then an exact covers-test on prepared geometry.
"""

from __future__ import annotations

from collections.abc import Mapping

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
