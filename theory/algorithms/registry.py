"""One registry of test-time algorithms: each entry is a frozen :class:`AlgorithmSpec` (key,
class, preset object, what the constructor needs, figure label and colour).

Adding an algorithm = one module with a class on the harness interface (a ``from_training``
classmethod and a frozen preset dataclass holding all its numbers) + one :func:`register` line
below. :func:`make_algorithm` builds any entry from a training result and its family, with no
branch on classes or preset names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from safepce.tabular.errors import InputError

from .dope import DOPE, DOPE_EXPERIMENT, DOPE_THEORY, DOPEPlus
from .lb_sgd import LB_SGD_CERTIFIED, LB_SGD_EXPERIMENT, LBSGD
from .safe_meta_rl import (
    SAFE_META_RL_EXPERIMENT,
    SAFE_META_RL_SMOOTHED,
    SAFE_META_RL_SMOOTHED_START,
    SafeMetaRL,
)
from .safe_pce import (
    PCE,
    PCE_EXPERIMENT,
    SAFE_PCE_EXPERIMENT,
    SAFE_PCE_POOLED_GATE,
    SCALED,
    THEORY,
    SafePCE,
)
from .safe_pce_certified import CERTIFIED, CertifiedSafePCE


class UnknownAlgorithmError(InputError):
    """An algorithm key that is not in the registry."""


@dataclass(frozen=True)
class AlgorithmSpec:
    """A registered algorithm: ``cls.from_training(training, family, horizon, preset, delta)``
    builds it; ``needs`` says what that constructor takes from the training phase."""

    key: str
    cls: type
    preset: object
    label: str
    color: str
    needs: str
    #: matplotlib line style: one colour per method, one style per preset of it
    linestyle: str = "-"

    @property
    def preset_name(self) -> str:
        return self.preset.name

    def describe(self) -> dict:
        """The spec as JSON: class, preset name and every number of the preset."""
        return {"class": self.cls.__name__, "preset": self.preset.name,
                "preset_values": dataclasses.asdict(self.preset), "needs": self.needs}


REGISTRY: dict[str, AlgorithmSpec] = {}

_UNITS = "training (U_hat, pi_s) and the family's units; paper-unit presets also eps, delta"
_TASKS = "training (pi_s) and the cover's tasks (the family's static structure)"


def register(key: str, cls: type, preset, label: str, color: str, needs: str,
             linestyle: str = "-") -> AlgorithmSpec:
    """Add an algorithm under ``key`` (refuses a key registered twice)."""
    if key in REGISTRY:
        raise InputError(f"key: expected a new algorithm key; {key!r} is registered already")
    spec = REGISTRY[key] = AlgorithmSpec(key, cls, preset, label, color, needs, linestyle)
    return spec


#: Okabe & Ito's colour-blind-safe palette (one colour per method; a method's other presets
#: keep its colour and change the line style)
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky blue": "#56B4E9",
             "bluish green": "#009E73", "yellow": "#F0E442", "blue": "#0072B2",
             "vermillion": "#D55E00", "reddish purple": "#CC79A7"}
_C = OKABE_ITO


def spec(key: str) -> AlgorithmSpec:
    """The spec of ``key``, or :class:`UnknownAlgorithmError` naming the known keys."""
    try:
        return REGISTRY[key]
    except KeyError:
        raise UnknownAlgorithmError(
            f"--algorithms: expected names among {tuple(REGISTRY)}; got {key!r}") from None


def make_algorithm(key: str, training, family, horizon: int, delta: float | None = None):
    """Instantiate the registered algorithm ``key`` on a training result of ``family``."""
    entry = spec(key)
    return entry.cls.from_training(training, family, horizon, entry.preset, delta)


register("safe-pce", SafePCE, SAFE_PCE_EXPERIMENT, "Safe-PCE", _C["blue"], _UNITS)
register("pce", PCE, PCE_EXPERIMENT, "PCE (unsafe)", _C["vermillion"], _UNITS)
register("safe-pce-theory", SafePCE, THEORY, "Safe-PCE, theory constants", _C["blue"], _UNITS,
         ":")
register("pce-theory", PCE, THEORY, "PCE, theory constants", _C["vermillion"], _UNITS, ":")
register("safe-pce-scaled", SafePCE, SCALED, "Safe-PCE, scaled constants", _C["blue"], _UNITS,
         "-.")
register("safe-meta-rl", SafeMetaRL, SAFE_META_RL_EXPERIMENT, "Safe Meta-RL", _C["bluish green"],
         _TASKS)
register("dope-plus", DOPEPlus, DOPE_EXPERIMENT, "DOPE+", _C["orange"], _TASKS)
register("dope", DOPE, DOPE_EXPERIMENT, "DOPE", _C["reddish purple"], _TASKS)
register("lb-sgd", LBSGD, LB_SGD_EXPERIMENT, "LB-SGD", _C["sky blue"], _TASKS)
register("safe-pce-certified", CertifiedSafePCE, CERTIFIED, "Safe-PCE, certified", _C["black"],
         "training (U_hat's policies, pi_s) and the family's model class (finite, or a kernel "
         "affine in d <= 3 parameters on a box); K >= 1 constraints")
register("safe-pce-pooled-gate", SafePCE, SAFE_PCE_POOLED_GATE, "Safe-PCE, pooled gate",
         _C["blue"], _UNITS, "--")
register("safe-meta-rl-smoothed", SafeMetaRL, SAFE_META_RL_SMOOTHED,
         "Safe Meta-RL, smoothed variant", _C["bluish green"], _TASKS, "--")
register("safe-meta-rl-smoothed-start", SafeMetaRL, SAFE_META_RL_SMOOTHED_START,
         "Safe Meta-RL, smoothed start only", _C["bluish green"], _TASKS, ":")
register("lb-sgd-certified", LBSGD, LB_SGD_CERTIFIED, "LB-SGD, certified step", _C["sky blue"],
         _TASKS, "--")
register("dope-plus-theory", DOPEPlus, DOPE_THEORY, "DOPE+, worst-case widths", _C["orange"],
         _TASKS, "--")
