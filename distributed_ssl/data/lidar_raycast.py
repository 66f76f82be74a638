"""A spinning multi-beam LiDAR, simulated by casting every beam × azimuth ray against a scene's primitives.

All intersections are computed at once per primitive type ([rays, primitives] arrays); the nearest hit wins.
Intensity follows reflectivity × incidence angle with range fall-off; ranges get Gaussian noise. Each class has a
typical reflectivity; with `reflectivity_spread` every primitive (each car body, trunk, crown, pole, the ground) gets
its own, drawn log-normally around it, as real surfaces differ by paint, bark, wetness and material. Without it,
intensity alone nearly names an object's class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distributed_ssl.data.lidar_scene import GROUND, REFLECTIVITY, Scene

CLASS_REFLECTIVITY = np.array([REFLECTIVITY[k] for k in range(max(REFLECTIVITY) + 1)])  # indexed by point class


@dataclass(frozen=True)
class SpinningLidar:
    beams: int = 16
    azimuth_steps: int = 720
    fov_up_deg: float = 15.0
    fov_down_deg: float = -15.0
    height: float = 1.8
    max_range: float = 40.0
    range_noise: float = 0.02  # metres, one sigma
    reflectivity_spread: float = 0.0  # sigma of log(reflectivity) between primitives of one class; 0: one per class

    def rays(self, rng: np.random.Generator) -> np.ndarray:
        """Unit directions [beams * azimuth_steps, 3]; a random start azimuth, as a real spin has."""
        elev = np.deg2rad(np.linspace(self.fov_down_deg, self.fov_up_deg, self.beams))
        azim = rng.uniform(0, 2 * np.pi) + np.linspace(0, 2 * np.pi, self.azimuth_steps, endpoint=False)
        e, a = np.meshgrid(elev, azim, indexing="ij")
        return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], axis=-1).reshape(-1, 3)


def primitive_reflectivity(cls: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray:
    """Reflectivity of each primitive of classes `cls`: its class's, or drawn around it when `spread` > 0."""
    typical = CLASS_REFLECTIVITY[np.asarray(cls, dtype=np.int64)]
    if spread <= 0:
        return typical
    return np.clip(typical * np.exp(rng.normal(0.0, spread, len(typical))), 0.02, 1.0)


def _nearest(best_t: np.ndarray, best_cls: np.ndarray, best_refl: np.ndarray, best_cos: np.ndarray, t: np.ndarray,
             cls: np.ndarray, refl: np.ndarray, cos: np.ndarray) -> None:
    """Fold [R, P] candidate hits (inf where missed) into the running nearest hit per ray, in place."""
    if t.size == 0:
        return
    j = t.argmin(axis=1)
    rows = np.arange(len(t))
    tj = t[rows, j]
    better = tj < best_t
    best_t[better] = tj[better]
    best_cls[better] = cls[j[better]]
    best_refl[better] = refl[j[better]]
    best_cos[better] = cos[rows, j][better]


def cast(scene: Scene, lidar: SpinningLidar, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One sweep: points float32 [N, 4] (x, y, z, intensity) in the sensor's frame and uint8 classes [N]."""
    d = lidar.rays(rng)
    o = np.array([0.0, 0.0, lidar.height])
    r = len(d)
    best_t, best_cls, best_refl, best_cos = np.full(r, np.inf), np.zeros(r, dtype=np.int64), np.zeros(r), np.zeros(r)

    def nearest(t: np.ndarray, cls: np.ndarray, cos: np.ndarray) -> None:
        cls = np.asarray(cls)
        _nearest(best_t, best_cls, best_refl, best_cos, t, cls,
                 primitive_reflectivity(cls, lidar.reflectivity_spread, rng), cos)

    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d[:, 2] < -1e-6, -o[2] / d[:, 2], np.inf)[:, None]  # ground plane z = 0
        nearest(t, np.array([GROUND]), np.abs(d[:, 2:3]))

        if scene.spheres:
            sp = np.asarray(scene.spheres)
            oc = o - sp[:, :3]  # [S, 3]
            b = d @ oc.T  # [R, S]
            disc = b**2 - ((oc**2).sum(1) - sp[:, 3] ** 2)
            t = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
            t = np.where(t > 0, t, np.inf)
            hit = o + t[..., None] * d[:, None, :]
            cos = np.abs(((hit - sp[None, :, :3]) * d[:, None, :]).sum(-1)) / sp[:, 3]
            nearest(t, scene.sphere_cls, np.nan_to_num(cos))

        if scene.cylinders:
            cy = np.asarray(scene.cylinders)
            ocxy = o[:2] - cy[:, :2]  # [C, 2]
            a = (d[:, :2] ** 2).sum(1, keepdims=True)  # [R, 1]
            b = d[:, :2] @ ocxy.T  # [R, C]
            disc = b**2 - a * ((ocxy**2).sum(1) - cy[:, 2] ** 2)
            t = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
            z = o[2] + t * d[:, 2:3]
            t = np.where((t > 0) & (z >= cy[:, 3]) & (z <= cy[:, 4]), t, np.inf)
            hitxy = o[:2] + t[..., None] * d[:, None, :2]
            cos = np.abs(((hitxy - cy[None, :, :2]) * d[:, None, :2]).sum(-1)) / cy[:, 2]
            nearest(t, scene.cyl_cls, np.nan_to_num(cos))

        if scene.boxes:
            bx = np.asarray(scene.boxes)
            c, s = np.cos(-bx[:, 6]), np.sin(-bx[:, 6])  # rotate rays into each box's frame
            rel = o - bx[:, :3]  # [B, 3]
            ol = np.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1], rel[:, 2]], -1)
            dl = np.stack([d[:, None, 0] * c - d[:, None, 1] * s, d[:, None, 0] * s + d[:, None, 1] * c,
                           np.broadcast_to(d[:, None, 2], (r, len(bx)))], -1)  # [R, B, 3]
            t1 = (-bx[:, 3:6] - ol) / dl
            t2 = (bx[:, 3:6] - ol) / dl
            near = np.minimum(t1, t2)
            t_near, t_far = near.max(-1), np.maximum(t1, t2).min(-1)
            t = np.where((t_near <= t_far) & (t_near > 0), t_near, np.inf)
            # the slab that gave t_near is the face hit; its normal is that local axis
            axis = near.argmax(-1)
            cos = np.abs(np.take_along_axis(dl, axis[..., None], -1)[..., 0])
            nearest(t, scene.box_cls, np.nan_to_num(cos))

    keep = best_t < lidar.max_range
    rng_m = best_t[keep] + rng.normal(0.0, lidar.range_noise, size=int(keep.sum()))
    xyz = o + rng_m[:, None] * d[keep]
    cls = best_cls[keep]
    intensity = best_refl[keep] * (0.3 + 0.7 * best_cos[keep]) * np.exp(-rng_m / 100.0) + rng.normal(0, 0.02, len(cls))
    points = np.concatenate([xyz, np.clip(intensity, 0, 1)[:, None]], axis=1).astype(np.float32)
    return points, cls.astype(np.uint8)
