"""Procedural outdoor scenes for the LiDAR sample set: primitives (boxes, vertical cylinders, spheres) on flat ground.

Each scene type has its own mix of object classes, so the scene type is a label a representation can learn,
and every primitive carries a per-point class for segmentation-style uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

POINT_CLASSES = ["ground", "building", "car", "tree", "pole", "bush"]
GROUND, BUILDING, CAR, TREE, POLE, BUSH = range(len(POINT_CLASSES))
REFLECTIVITY = {GROUND: 0.25, BUILDING: 0.45, CAR: 0.8, TREE: 0.35, POLE: 0.6, BUSH: 0.3}


@dataclass
class Scene:
    """Primitive arrays; each list holds one row per primitive. Boxes are (cx, cy, cz, hx, hy, hz, yaw)."""

    boxes: list[tuple[float, ...]] = field(default_factory=list)
    box_cls: list[int] = field(default_factory=list)
    cylinders: list[tuple[float, ...]] = field(default_factory=list)  # (cx, cy, radius, z0, z1)
    cyl_cls: list[int] = field(default_factory=list)
    spheres: list[tuple[float, ...]] = field(default_factory=list)  # (cx, cy, cz, radius)
    sphere_cls: list[int] = field(default_factory=list)
    objects: list[tuple[int, float, float]] = field(default_factory=list)  # (class, cx, cy) of each object placed

    def box(self, cx: float, cy: float, lx: float, ly: float, height: float, yaw: float, cls: int,
            z0: float = 0.0) -> None:
        self.boxes.append((cx, cy, z0 + height / 2, lx / 2, ly / 2, height / 2, yaw))
        self.box_cls.append(cls)

    def car(self, cx: float, cy: float, yaw: float, rng: np.random.Generator) -> None:
        length, width = rng.uniform(3.8, 4.9), rng.uniform(1.6, 1.9)
        self.objects.append((CAR, cx, cy))
        self.box(cx, cy, length, width, rng.uniform(0.7, 0.9), yaw, CAR, z0=0.3)
        self.box(cx - 0.2 * length * np.cos(yaw), cy - 0.2 * length * np.sin(yaw), 0.5 * length, 0.9 * width,
                 rng.uniform(0.45, 0.6), yaw, CAR, z0=1.05)

    def tree(self, cx: float, cy: float, rng: np.random.Generator) -> None:
        height, crown = rng.uniform(4.0, 12.0), rng.uniform(1.5, 3.5)
        self.objects.append((TREE, cx, cy))
        self.cylinders.append((cx, cy, rng.uniform(0.12, 0.35), 0.0, height - crown))
        self.cyl_cls.append(TREE)
        self.spheres.append((cx, cy, height - crown * 0.6, crown))
        self.sphere_cls.append(TREE)

    def pole(self, cx: float, cy: float, rng: np.random.Generator) -> None:
        self.objects.append((POLE, cx, cy))
        self.cylinders.append((cx, cy, rng.uniform(0.08, 0.2), 0.0, rng.uniform(4.0, 9.0)))
        self.cyl_cls.append(POLE)

    def bush(self, cx: float, cy: float, rng: np.random.Generator) -> None:
        r = rng.uniform(0.4, 1.2)
        self.objects.append((BUSH, cx, cy))
        self.spheres.append((cx, cy, r * 0.6, r))
        self.sphere_cls.append(BUSH)


def _away_from_sensor(rng: np.random.Generator, extent: float, clear: float) -> tuple[float, float]:
    """A random ground position in the square of half-side `extent`, at least `clear` metres from the sensor."""
    while True:
        x, y = rng.uniform(-extent, extent, size=2)
        if x * x + y * y > clear * clear:
            return float(x), float(y)


def street(rng: np.random.Generator) -> Scene:
    s = Scene()
    for side in (-1, 1):
        x = -45.0
        while x < 45.0:
            length = rng.uniform(8, 20)
            if rng.random() < 0.85:
                s.box(x + length / 2, side * rng.uniform(10, 13), length, rng.uniform(6, 10), rng.uniform(6, 20),
                      0.0, BUILDING)
            x += length + rng.uniform(0, 4)
        for x in np.arange(-40, 40, rng.uniform(10, 18)):
            s.pole(float(x + rng.uniform(-1, 1)), side * 6.5, rng)
        for x in np.arange(-40, 40, 6.0):
            if rng.random() < 0.5:
                s.car(float(x + rng.uniform(-0.5, 0.5)), side * 5.0, 0.0, rng)
    return s


def parking(rng: np.random.Generator) -> Scene:
    s = Scene()
    for row_y in (-13.0, -7.5, 7.5, 13.0):
        for x in np.arange(-30, 30, 2.7):
            if rng.random() < 0.7:
                s.car(float(x), row_y + rng.uniform(-0.3, 0.3), np.pi / 2 + rng.normal(0, 0.08), rng)
    for _ in range(rng.integers(2, 6)):
        s.pole(*_away_from_sensor(rng, 30, 4), rng)
    return s


def forest(rng: np.random.Generator) -> Scene:
    s = Scene()
    for _ in range(rng.integers(40, 80)):
        s.tree(*_away_from_sensor(rng, 35, 3), rng)
    for _ in range(rng.integers(5, 20)):
        s.bush(*_away_from_sensor(rng, 30, 2), rng)
    return s


def suburb(rng: np.random.Generator) -> Scene:
    s = Scene()
    for _ in range(rng.integers(4, 9)):
        x, y = _away_from_sensor(rng, 30, 9)
        s.box(x, y, rng.uniform(8, 13), rng.uniform(7, 11), rng.uniform(3.5, 7), rng.uniform(0, np.pi), BUILDING)
    for _ in range(rng.integers(5, 15)):
        s.tree(*_away_from_sensor(rng, 30, 4), rng)
    for _ in range(rng.integers(1, 5)):
        s.car(*_away_from_sensor(rng, 20, 4), rng.uniform(0, np.pi), rng)
    return s


def field_scene(rng: np.random.Generator) -> Scene:
    s = Scene()
    for _ in range(rng.integers(4, 12)):
        s.bush(*_away_from_sensor(rng, 35, 3), rng)
    line_y = rng.uniform(-20, 20)
    for x in np.arange(-40, 40, rng.uniform(25, 35)):
        s.pole(float(x), line_y, rng)
    return s


SCENE_TYPES: dict[str, Callable[[np.random.Generator], Scene]] = {
    "street": street, "parking": parking, "forest": forest, "suburb": suburb, "field": field_scene,
}
