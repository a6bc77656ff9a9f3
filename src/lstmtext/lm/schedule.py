"""Learning-rate schedules of ULMFiT and fastai, as functions of the step: slanted triangular and one-cycle.

Both return the learning rate multiplier at step ``t`` of ``total`` (so a schedule serves every parameter
group of discriminative learning rates at once: group ``g`` uses ``lr_g * schedule(t)``).
"""

from __future__ import annotations

import math

from lstmtext.errors import ConfigError


def slanted_triangular(t: int, total: int, *, cut_frac: float = 0.1, ratio: float = 32.0) -> float:
    """ULMFiT's slanted triangular multiplier (Howard & Ruder 2018, eq. 3): a short linear rise then a long
    linear decay, from ``1 / ratio`` to 1 at ``cut = floor(total * cut_frac)`` and back to ``1 / ratio``.

    >>> [round(slanted_triangular(t, 10), 3) for t in (0, 1, 5, 10)]
    [0.031, 1.0, 0.57, 0.031]
    """
    if total <= 0:
        raise ConfigError(f"slanted_triangular: total must be a positive number of steps, got {total}")
    cut = max(1, math.floor(total * cut_frac))
    p = t / cut if t < cut else 1 - (t - cut) / max(1, total - cut)
    p = min(max(p, 0.0), 1.0)
    return (1 + p * (ratio - 1)) / ratio


def one_cycle(t: int, total: int, *, pct_start: float = 0.25, div: float = 25.0, final_div: float = 1e4) -> float:
    """fastai's one-cycle multiplier: cosine from ``1 / div`` up to 1 over ``pct_start`` of the steps, then
    cosine down to ``1 / (div * final_div)``.

    >>> round(one_cycle(0, 100), 3), round(one_cycle(25, 100), 3), one_cycle(100, 100) < 1e-5
    (0.04, 1.0, True)
    """
    if total <= 0:
        raise ConfigError(f"one_cycle: total must be a positive number of steps, got {total}")
    warm = max(1, round(total * pct_start))

    def cos(a: float, b: float, p: float) -> float:
        return b + (a - b) / 2 * (1 + math.cos(math.pi * min(max(p, 0.0), 1.0)))

    if t < warm:
        return cos(1 / div, 1.0, t / warm)
    return cos(1.0, 1 / (div * final_div), (t - warm) / max(1, total - warm))


SCHEDULES = {"slanted_triangular": slanted_triangular, "one_cycle": one_cycle, "constant": lambda t, total: 1.0}


def get_schedule(name: str):
    """The schedule function called ``name`` (``slanted_triangular``, ``one_cycle`` or ``constant``)."""
    if name not in SCHEDULES:
        raise ConfigError(f"schedule must be one of {sorted(SCHEDULES)}, got {name!r}")
    return SCHEDULES[name]
