"""safepce: exact, fast checks of constrained meta-RL with provable test-time safety
(Ni & Kamgarpour, ICML 2026, arXiv:2601.21845) on finite CMDPs.

Three subpackages, with data flowing one way (``tabular`` <- ``theory`` <- ``bounds``):

- :mod:`safepce.tabular`: finite CMDPs in the paper's units (reward in [0, 1], utility in
  [-1, 1], feasible iff V_c >= 0, Section 2), exact evaluation, the occupancy LP, the task
  distance of Lemma C.3, the numba simulator, task families and distributions;
- :mod:`safepce.theory`: Algorithm 1 (training) and its oracles, Safe-PCE (Algorithm 2), PCE
  (Algorithm 4), the experiment's baselines, the test-phase harness and the results format;
- :mod:`safepce.bounds`: the paper's upper and lower bounds as functions, covering numbers
  (Def. 4.1), the hard family of App. G, ``verify`` and the command line.

The subpackages and the entry points below are imported on first use, so ``import safepce``
is cheap.

Examples
--------
>>> import safepce
>>> task = safepce.gridworld(0.3)
>>> round(safepce.solve(task).reward_value, 5)
51.96282
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata

try:
    __version__ = metadata.version("safepce")
except metadata.PackageNotFoundError:   # imported from a source tree that was not installed
    __version__ = "unknown"

SUBPACKAGES = ("tabular", "theory", "bounds")

# entry point -> subpackage that defines it
ENTRY_POINTS = {
    "CMDP": "tabular", "UtilityForm": "tabular", "InputError": "tabular",
    "evaluate": "tabular", "solve": "tabular", "simulate": "tabular", "distance": "tabular",
    "gridworld": "tabular", "random_cmdp": "tabular",
    "train": "theory", "run_test_phase": "theory", "make_algorithm": "theory",
    "REGISTRY": "theory", "SafePCE": "theory", "PCE": "theory",
    "reproduce": "theory", "violation_rates": "theory",
    "theorem_4_2_terms": "bounds", "covering_number": "bounds", "hard_family": "bounds",
    "sample_lower_bound": "bounds", "run_verify": "bounds",
}

__all__ = ["__version__", *SUBPACKAGES, *ENTRY_POINTS]


#: Gymnasium environments: id -> (entry point, kwargs, max_episode_steps). Registered by string,
#: so registering imports nothing of safepce; the entry point is imported by ``gymnasium.make``.
GYM_ENVS = {
    # the paper's gridworld (kwarg ``noise``, default 0.1), 600-step episodes
    "safepce/Gridworld-v0": ("safepce.tabular.gym:CMDPEnv", {"horizon": 600}, 600),
    # any CMDP: gymnasium.make("safepce/CMDP-v0", cmdp=task, horizon=H)
    "safepce/CMDP-v0": ("safepce.tabular.gym:CMDPEnv", {}, None),
}


def register_gym_envs() -> bool:
    """Register :data:`GYM_ENVS` with Gymnasium (False when Gymnasium is not installed).

    Done on ``import safepce`` when Gymnasium is already imported, and by importing
    :mod:`safepce.tabular.gym`; ``gymnasium.make("safepce.tabular.gym:safepce/Gridworld-v0")``
    works with no import at all (Gymnasium imports the module named before the colon).
    ``import safepce`` does not import Gymnasium itself (it would add ~0.3 s to every import).
    """
    try:
        import gymnasium
    except ImportError:
        return False
    for env_id, (entry_point, kwargs, steps) in GYM_ENVS.items():
        if env_id not in gymnasium.envs.registry:
            gymnasium.register(env_id, entry_point=entry_point, kwargs=kwargs,
                               max_episode_steps=steps)
    return True


if "gymnasium" in sys.modules:
    register_gym_envs()


def __getattr__(name: str):
    if name in SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in ENTRY_POINTS:
        return getattr(importlib.import_module(f"{__name__}.{ENTRY_POINTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
