"""One registry of test-time algorithms: each entry is a frozen :class:`AlgorithmSpec` (key,
class, preset object, what the constructor needs, figure label, colour and line style, the
figures of ``reproduce`` it belongs to, and the deployment key of its safe policy pi_s).

Adding an algorithm = one module with a class on the harness interface (a ``from_training``
classmethod and a frozen preset dataclass holding all its numbers) + one :func:`register` line
below. :func:`make_algorithm` builds any entry from a training result and its family, with no
branch on classes or preset names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
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
    #: the figures of ``reproduce`` that show it (:data:`FIGURES`); in none: ``figure2_other``
    figures: tuple[str, ...] = ()
    #: the key its deployments give pi_s alone: those episodes count as safe-only
    safe_key: Hashable = "safe"

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


#: the figures of ``reproduce`` an algorithm can belong to: the paper's Figure 2 (Section 6) and
#: its appendix figure with every algorithm
FIGURES = ("figure2", "figure2_appendix")


def register(key: str, cls: type, preset, label: str, color: str, needs: str,
             linestyle: str = "-", figures: tuple[str, ...] = (),
             safe_key: Hashable = "safe") -> AlgorithmSpec:
    """Add an algorithm under ``key`` (refuses a key registered twice, or a figure not in
    :data:`FIGURES`)."""
    if key in REGISTRY:
        raise InputError(f"key: expected a new algorithm key; {key!r} is registered already")
    unknown = [f for f in figures if f not in FIGURES]
    if unknown:
        raise InputError(f"figures: expected names among {FIGURES}; got {unknown}")
    spec = REGISTRY[key] = AlgorithmSpec(key, cls, preset, label, color, needs, linestyle,
                                         tuple(figures), safe_key)
    return spec


def figure_keys(figure: str, keys=None) -> tuple[str, ...]:
    """The registered algorithms (of ``keys``, default all) shown in ``figure``, in registry
    order; ``"figure2_other"``: those in no figure."""
    keys = tuple(REGISTRY) if keys is None else tuple(keys)
    if figure == "figure2_other":
        return tuple(k for k in keys if not spec(k).figures)
    if figure not in FIGURES:
        raise InputError(f"figure: expected one of {FIGURES + ('figure2_other',)}; got "
                         f"{figure!r}")
    return tuple(k for k in keys if figure in spec(k).figures)


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
    """Instantiate the registered algorithm ``key`` on a training result of ``family``; the
    instance carries the entry's ``safe_key``.

    Examples
    --------
    >>> from safepce.tabular import families
    >>> from safepce.theory import train
    >>> from safepce.theory.oracles import DistanceCoverage
    >>> D = families.make("runnable")
    >>> training = train(D, DistanceCoverage(0.01), 0.1, seed=0, progress=False)
    >>> algorithm = make_algorithm("safe-pce-theory", training, D, 40, 0.1)
    >>> algorithm.preset, algorithm.safe_key
    ('theory', 'safe')
    """
    entry = spec(key)
    algorithm = entry.cls.from_training(training, family, horizon, entry.preset, delta)
    algorithm.safe_key = entry.safe_key
    return algorithm


register("safe-pce", SafePCE, SAFE_PCE_EXPERIMENT, "Safe-PCE", _C["blue"], _UNITS,
         figures=("figure2", "figure2_appendix"))
register("pce", PCE, PCE_EXPERIMENT, "PCE (unsafe)", _C["vermillion"], _UNITS,
         figures=("figure2_appendix",))
register("safe-pce-theory", SafePCE, THEORY, "Safe-PCE, theory constants", _C["blue"], _UNITS,
         ":")
register("pce-theory", PCE, THEORY, "PCE, theory constants", _C["vermillion"], _UNITS, ":")
register("safe-pce-scaled", SafePCE, SCALED, "Safe-PCE, scaled constants", _C["blue"], _UNITS,
         "-.")
register("safe-meta-rl", SafeMetaRL, SAFE_META_RL_EXPERIMENT, "Safe Meta-RL", _C["bluish green"],
         _TASKS, figures=("figure2",))
register("dope-plus", DOPEPlus, DOPE_EXPERIMENT, "DOPE+", _C["orange"], _TASKS,
         figures=("figure2", "figure2_appendix"))
register("dope", DOPE, DOPE_EXPERIMENT, "DOPE", _C["reddish purple"], _TASKS,
         figures=("figure2_appendix",))
register("lb-sgd", LBSGD, LB_SGD_EXPERIMENT, "LB-SGD", _C["sky blue"], _TASKS,
         figures=("figure2", "figure2_appendix"))
register("safe-pce-certified", CertifiedSafePCE, CERTIFIED, "Safe-PCE, certified", _C["black"],
         "training (U_hat's policies, pi_s) and the family's model class (finite, or a kernel "
         "affine in d <= 3 parameters on a box); K >= 1 constraints",
         figures=("figure2_appendix",))
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
