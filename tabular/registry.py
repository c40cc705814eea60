"""The registry of task families: each name maps to a :class:`FamilySpec` whose ``factory``
builds the family's task distribution D, with the training defaults commands use for it.

Factories are given as ``"module:attribute"`` strings and imported when a family is first made,
so the registry imports no family module and no registration depends on import order: every
built-in family, including ``hard`` (App. G, defined in :mod:`safepce.bounds.hard_instance`), is
known from ``import safepce.tabular`` on. :func:`register` adds families (a callable or such a
string). ``make(name, **params)`` builds one and records ``{"family": name, **params}`` as its
JSON description.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from .errors import UnknownFamilyError
from .families import PAPER_TEST_TASKS


@dataclass(frozen=True)
class FamilySpec:
    """A registered family: ``factory(**params)`` (a callable, or a ``"module:attribute"``
    string naming one) returns its task distribution D; the rest are the training defaults
    commands use for it (``oracle`` "parameter" needs the family's ``distance_scale``;
    ``radius`` in that oracle's units; ``safe_oracle`` "designated" (the optimal policy of the
    task at ``safe_parameter``), "worst-case" or "min-cost"); ``test_parameters`` are published
    test tasks (the gridworld's ten), used only with the family's default parameters."""

    name: str
    factory: Callable | str
    description: str
    oracle: str = "distance"
    radius: float = 0.01
    safe_oracle: str = "worst-case"
    safe_parameter: float | None = None
    horizon: int = 100
    #: published test tasks (parameters), used by ``reproduce`` instead of draws from D
    test_parameters: tuple[float, ...] | None = None

    def resolve(self) -> Callable:
        """The factory itself (a string is imported now)."""
        if callable(self.factory):
            return self.factory
        module, _, attribute = self.factory.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def parameters(self) -> tuple[str, ...]:
        """The names the factory takes (the family flags commands may pass it)."""
        return tuple(inspect.signature(self.resolve()).parameters)

    def defaults(self) -> dict:
        """The family's own defaults: the factory's parameters with a default value (gamma,
        budget, noise distribution, size, ...), then the training defaults of this spec."""
        signature = inspect.signature(self.resolve()).parameters
        own = {name: p.default for name, p in signature.items()
               if p.default is not inspect.Parameter.empty}
        return own | {"oracle": self.oracle, "radius": self.radius,
                      "safe_oracle": self.safe_oracle, "safe_parameter": self.safe_parameter,
                      "horizon": self.horizon}


FAMILIES: dict[str, FamilySpec] = {}


def register(name: str, factory: Callable | str, description: str = "",
             **defaults) -> FamilySpec:
    """Register a family under ``name`` (refuses a name registered twice)."""
    if name in FAMILIES:
        raise UnknownFamilyError(f"name: expected a new family name; {name!r} is registered")
    if isinstance(factory, str) and ":" not in factory:
        raise UnknownFamilyError(f"factory: expected a callable or 'module:attribute'; got "
                                 f"{factory!r}")
    spec = FAMILIES[name] = FamilySpec(name, factory, description, **defaults)
    return spec


def family_names() -> tuple[str, ...]:
    return tuple(FAMILIES)


def family_spec(name: str) -> FamilySpec:
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnknownFamilyError(
            f"--family: expected one of {tuple(FAMILIES)}; got {name!r}") from None


def make(name: str, **params):
    """The task distribution of family ``name`` built with ``params``; its ``to_dict()`` is a
    JSON description that rebuilds it (so training results can): ``{"family": name, **params}``,
    or every parameter where the family writes its own (the gridworld).

    Examples
    --------
    >>> from safepce.tabular import families
    >>> families.make("runnable").to_dict()
    {'family': 'runnable'}
    >>> families.make("gridworld", gamma=0.8).to_dict()
    {'family': 'gridworld', 'mean': 0.3, 'std': 0.03, 'low': 0.0, 'high': 0.5, 'gamma': 0.8,
     'budget': 1.5}
    >>> families.family_spec("gridworld").defaults()["budget"]
    1.5
    """
    spec = family_spec(name)
    try:
        distribution = spec.resolve()(**params)
    except TypeError as exc:
        raise UnknownFamilyError(f"--family {name}: {exc}") from None
    distribution.family_spec = {"family": name, **params}
    return distribution


_D = "safepce.tabular.distributions:"
register("gridworld", _D + "GridworldNoise",
         "the paper's 7x7 gridworld, noise ~ Normal(mean, std) clipped to [low, high] (its D)",
         oracle="parameter", radius=0.005, safe_oracle="designated", safe_parameter=0.4,
         horizon=600, test_parameters=PAPER_TEST_TASKS)
register("runnable", _D + "runnable_family",
         "4-state affine-kernel family at gamma 0.5 where the theory constants act (L = 6)",
         oracle="distance", radius=0.01, safe_oracle="worst-case", horizon=40)
register("random-sparse", _D + "random_sparse_family",
         "sparse random tasks at scale (default 1,000 states, 10 successors), kernel affine in "
         "theta", oracle="distance", radius=0.01, safe_oracle="min-cost", horizon=100)
register("arms", _D + "arms_family",
         "a finite family with one good arm per task, where wrong candidates must be eliminated",
         oracle="distance", radius=1e-3, safe_oracle="worst-case", horizon=40)
register("pair", _D + "slack_pair_family",
         "two one-state tasks with slack optima, where Theorem 4.2's bound binds at K ~ 1e6",
         oracle="distance", radius=1e-3, safe_oracle="worst-case", horizon=20)
register("gridworld-slip-wind", _D + "GridworldSlipWind",
         "the 7x7 gridworld with slip ~ Normal(0.25, 0.03) clipped to [0, 0.45] and an east "
         "wind ~ Normal(0.04, 0.01) clipped to [0, 0.1] (kernel affine in both)",
         oracle="parameter", radius=0.02, safe_oracle="worst-case", horizon=600)
register("random-sparse-plane", _D + "RandomSparsePlane",
         "20-state random sparse tasks whose kernel is affine in a 2-D parameter uniform on "
         "[0, 0.5]^2", oracle="parameter", radius=0.1, safe_oracle="min-cost", horizon=100)
register("gridworld-energy", _D + "GridworldEnergy",
         "the 7x7 gridworld with two constraints (hazards, budget 1.5; energy per move, "
         "budget 3), noise ~ the paper's D",
         oracle="parameter", radius=0.005, safe_oracle="designated", safe_parameter=0.4,
         horizon=600)
register("file", "safepce.tabular.families:load_family",
         "a finite family saved by tabular.families.save_family (--family-file PATH)",
         oracle="distance", radius=0.01, safe_oracle="worst-case", horizon=100)
register("hard", "safepce.bounds.hard_instance:hard_distribution",
         "App. G's 2^m tasks (Theorem 5.1's lower-bound family), uniform",
         oracle="distance", radius=0.1 * 0.1 * 0.1**3, safe_oracle="worst-case", horizon=200)
