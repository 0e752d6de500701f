"""Acquisition maths of the predictor-in-the-loop searcher: expected hypervolume improvement
over a two-objective front, and the distance a point must improve to leave a front's dominated region."""

from __future__ import annotations

import numpy as np


def ehvi_2d(
    c: np.ndarray, mu: np.ndarray, sigma: np.ndarray, front_c: np.ndarray, front_y: np.ndarray, ref: float
) -> np.ndarray:
    """Expected hypervolume improvement of points ``(c, y ~ N(mu, sigma))`` over a 2-D front (minimisation).

    The front dominates, at cost ``x``, every ``y`` above ``B(x)``: the lowest ``y`` of front points
    with cost ``<= x`` (``ref`` where there is none). A point at cost ``c`` adds
    ``integral_c^ref max(0, min(B(x), ref) - y) dx``: on each segment of ``[c, ref]`` where ``B``
    is constant at ``b`` this is ``w * max(0, b - y)``, whose expectation under ``N(mu, sigma)`` is
    ``w * ((b - mu) Phi(z) + sigma phi(z))`` with ``z = (b - mu) / sigma``.
    """
    from scipy.stats import norm

    order = np.argsort(front_c)
    fc, fy = front_c[order], np.minimum.accumulate(front_y[order]) if len(order) else front_y
    # Breakpoints of B inside [min(c), ref]: the front's costs below ref, then ref.
    keep = fc < ref
    fc, fy = fc[keep], fy[keep]
    out = np.zeros(len(c))
    # Segment edges for each point: its own cost, the front costs above it, and ref.
    edges = np.concatenate([fc, [ref]])
    levels = np.concatenate([[ref], np.minimum(fy, ref)])  # B on [.., fc[0]), [fc[0], fc[1]), ...
    for k in range(len(edges)):
        lo = np.maximum(c, edges[k - 1] if k > 0 else -np.inf)
        width = np.clip(edges[k] - lo, 0.0, None)
        if not np.any(width > 0):
            continue
        b = levels[k]
        diff = b - mu
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(sigma > 0, diff / sigma, np.sign(diff) * np.inf)
            expected = np.where(sigma > 0, diff * norm.cdf(z) + sigma * norm.pdf(z), np.maximum(diff, 0.0))
        out += width * expected
    return out


def gap_to_front(points: np.ndarray, front: np.ndarray) -> np.ndarray:
    """How far (minimisation, normalised units) each point must improve to be dominated by no front point.

    A point dominated by front point ``p`` escapes it by improving any one objective by
    ``min_j(point_j - p_j)``; it must escape every front point. 0 for points not dominated.
    """
    if len(front) == 0:
        return np.zeros(len(points))
    diff = points[:, None, :] - front[None, :, :]
    return np.maximum(diff.min(axis=2).max(axis=1), 0.0)


__all__ = ["ehvi_2d", "gap_to_front"]
