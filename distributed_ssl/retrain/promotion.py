"""The promotion rule: move the alias only when the new encoder is not worse than the champion beyond a tolerance.

A pure function so that the rule is tested exhaustively without training anything, and so that its reason text
is the same in MLflow tags, the history file and the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(metric: str, new: float, champion: float | None, tolerance: float) -> Decision:
    """Higher is better. Promote when there is no champion, or when new >= champion - tolerance."""
    if champion is None:
        return Decision(True, f"no champion yet: {metric} {new:.4f} becomes the first")
    floor = champion - tolerance
    delta = new - champion
    if new >= floor:
        return Decision(True, f"{metric} {new:.4f} vs champion {champion:.4f} (delta {delta:+.4f}) is within "
                              f"tolerance {tolerance:g} (floor {floor:.4f})")
    return Decision(False, f"{metric} {new:.4f} vs champion {champion:.4f} (delta {delta:+.4f}) falls below the "
                           f"floor {floor:.4f} (tolerance {tolerance:g}): champion kept")
