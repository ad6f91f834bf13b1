"""Locate: the region a point lies in. Pure; the index is built once per rule set.

A point goes to the deepest region whose polygon covers it. A few dozen polygons are all
tested at once, vectorised; more are narrowed by a shapely STRtree over their boxes first,
then given an exact covers-test on prepared geometry. Each grid cell of the map (a hundredth
of a degree, about a kilometre) that lies wholly inside or outside every polygon is
remembered with its answer the first time a point falls in it, so that most points, away
from borders, are placed by a dictionary lookup; points in cells a border crosses are
always tested exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

# Up to this many polygons every point is tested against all of them in one vectorised
# call (a few microseconds for a dozen regions); beyond it an STRtree narrows them first.
SMALL = 64

GRID: Final = 100  # grid cells per degree
_GRID_CELLS: Final = 200_000  # cells remembered at most (about 20 MB); then it starts over
_ROW: Final = 1 << 16  # a cell's number: row * _ROW + column (columns: -18,000 to 18,000)
_EDGE: Final = 1e-9  # degrees added around a cell: its points' rounding stays inside
_BORDER: Final = "\0border"  # a cell a border crosses (region ids hold no NUL)


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
        self._grid: dict[int, str | None] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def outlines(self) -> dict[str, BaseGeometry]:
        """Each region's outline, by id (for drawing them)."""
        return dict(zip(self._ids, self._geoms, strict=True))

    def remembered(self) -> tuple[int, int]:
        """How many grid cells are remembered, and how many of them a border crosses."""
        return len(self._grid), sum(v is _BORDER for v in self._grid.values())

    def place(self, lat: float, lon: float) -> str | None:
        """The deepest region covering (lat, lon), or None."""
        found = self._remembered(lat, lon)
        return self.place_exactly([(lat, lon)])[0] if found is _BORDER else found

    def place_many(self, points: Sequence[tuple[float, float]]) -> list[str | None]:
        """`place` for many (lat, lon) points in one call: a batch of reports pays
        shapely's per-call overhead once, not per point."""
        out = [self._remembered(lat, lon) for lat, lon in points]
        exact = [n for n, found in enumerate(out) if found is _BORDER]
        if exact:
            placed = self.place_exactly([points[n] for n in exact])
            for n, region in zip(exact, placed, strict=True):
                out[n] = region
        return out

    def _remembered(self, lat: float, lon: float) -> str | None:
        """The answer for the point's grid cell, learnt now if need be; `_BORDER` if a
        border crosses the cell."""
        i, j = math.floor(lat * GRID), math.floor(lon * GRID)
        found = self._grid.get(i * _ROW + j, _BORDER)
        return self._learn(i, j) if found is _BORDER else found

    def _learn(self, i: int, j: int) -> str | None:
        """The answer for every point of grid cell (i, j), remembered; `_BORDER` if a
        border crosses it (or it was already known to)."""
        key = i * _ROW + j
        if key in self._grid:
            return self._grid[key]
        if len(self._grid) >= _GRID_CELLS:
            self._grid.clear()
        cell = shapely.box(j / GRID - _EDGE, i / GRID - _EDGE,
                           (j + 1) / GRID + _EDGE, (i + 1) / GRID + _EDGE)  # fmt: skip
        if self._tree is None:
            near = list(range(len(self._geoms)))
        else:
            near = self._tree.query(cell).tolist()
        geoms = [self._geoms[n] for n in near]
        touched = shapely.intersects(geoms, cell).tolist()
        covering = shapely.covers(geoms, cell).tolist()
        if touched != covering:  # a polygon holds part of the cell only
            found: str | None = _BORDER
        else:
            # Every point of the cell is covered by these alone: the deepest, then the
            # one listed first, as for one point.
            best = min((n for n, c in zip(near, covering, strict=True) if c),
                       key=lambda n: (-self._depth[n], n), default=None)  # fmt: skip
            found = self._ids[best] if best is not None else None
        self._grid[key] = found
        return found

    def place_exactly(self, points: Sequence[tuple[float, float]]) -> list[str | None]:
        """Each point tested against the polygons themselves."""
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
