"""A wall-clock training budget (``train.max_minutes``).

Comparisons "at the same compute" and users with a fixed afternoon need a run that stops when its
time is spent, with a final checkpoint, and whose LR schedule ends when the time does. The number
of steps the budget allows is not known up front, so the run times its first
:data:`CALIBRATION_STEPS` steps (skipping :data:`WARMUP_STEPS`, which are slower: allocator and
thread-pool warm-up), estimates how many steps the whole budget allows and from then on runs the
schedule over that many steps. The linear and cosine schedules hold the LR (nearly) constant over
those first steps, so the switch does not show. The first steps run slower than the rest
(caches warming, the data loader filling), so the estimate is refined once, when
:data:`REFINE_AT` of the budget is spent, from the steps timed since calibration; the linear schedule
is still in its constant part then (with the usual equal constant and decay parts). The estimate is saved in the checkpoint, so a
resumed run continues the same schedule, and the time already spent counts against the budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

__all__ = ["CALIBRATION_STEPS", "WARMUP_STEPS", "WallClockBudget"]

#: Steps timed before the estimate is made.
CALIBRATION_STEPS = 20
#: The first steps, not timed.
WARMUP_STEPS = 3
#: The share of the budget after which the estimate is refined.
REFINE_AT = 0.25


@dataclass
class WallClockBudget:
    """``seconds`` of wall-clock time for the whole run, of which ``spent_before`` went to earlier
    sessions (a resumed run). :meth:`start` starts this session's clock."""

    seconds: float
    spent_before: float = 0.0
    #: The steps the budget allows (None until estimated).
    estimated_steps: int | None = None
    #: Whether the refined estimate (at :data:`REFINE_AT` of the budget) has been made.
    refined: bool = False
    _started: float = field(default=0.0, repr=False)
    _window_start: tuple[int, float] | None = field(default=None, repr=False)
    _calibrated_at: tuple[int, float] = field(default=(0, 0.0), repr=False)

    def start(self) -> None:
        self._started = time.perf_counter()

    def spent(self) -> float:
        """Seconds spent so far, this session and earlier ones."""
        return self.spent_before + (time.perf_counter() - self._started)

    def exhausted(self) -> bool:
        return self.spent() >= self.seconds

    def observe(self, step: int, first_step: int) -> int | None:
        """Call after each step (``step`` steps done; this session started at ``first_step``).
        Returns the estimated total number of steps when calibration ends and when the estimate
        is refined, else None."""
        if self.estimated_steps is not None:
            if self.refined or self._window_start is None or self.spent() < REFINE_AT * self.seconds:
                return None
            self.refined = True
            self._window_start = (self._calibrated_at[0], self._calibrated_at[1])
            return self._extrapolate(step)
        done = step - first_step
        if done == WARMUP_STEPS:
            self._window_start = (step, time.perf_counter())
        if done < CALIBRATION_STEPS or self._window_start is None:
            return None
        estimate = self._extrapolate(step)
        self._calibrated_at = (step, time.perf_counter())
        return estimate

    def _extrapolate(self, step: int) -> int:
        s0, t0 = self._window_start  # type: ignore[misc]
        now = time.perf_counter()
        per_step = (now - t0) / max(step - s0, 1)
        remaining = max(self.seconds - self.spent(), 0.0)
        return step + max(int(math.floor(remaining / max(per_step, 1e-9))), 0)

    def state_dict(self) -> dict[str, float | int | None]:
        return {"seconds": self.seconds, "spent_s": round(self.spent(), 3), "estimated_steps": self.estimated_steps,
                "refined": self.refined}
