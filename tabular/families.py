"""Named task families: the paper's 7x7 gridworld (PAPER.md section 7) and random CMDPs for tests.

The gridworld is stored in cost form (cost 10 per step in a hazard, budget 1.5 on the discounted
cost). Its kernel is affine in the noise, ``P(p) = P_intended + p (P_domain - P_intended)``, so
building thousands of tasks costs one fused multiply-add each on two cached tensors.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .cmdp import CMDP, InvalidCMDPError
from .evaluate import evaluate
from .policy import uniform_policy

GRID_SIZE = 7
N_STATES = GRID_SIZE * GRID_SIZE
#: Action order of the paper: right, up, left, down as (dx, dy); y grows upward.
ACTION_NAMES = ("right", "up", "left", "down")
ACTION_DELTAS = ((1, 0), (0, 1), (-1, 0), (0, -1))
GOAL_STATE = 6 * GRID_SIZE + 3                      # (x=3, y=6) -> 45
HAZARD_STATES = tuple(sorted(y * GRID_SIZE + x for x in (2, 4) for y in range(1, 5)))
GOAL_REWARD = 10.0
HAZARD_COST = 10.0


def state_of(x: int, y: int) -> int:
    """Gridworld state index of column x and row y (``s = y * 7 + x``)."""
    return y * GRID_SIZE + x


def coordinates(state: int) -> tuple[int, int]:
    """(x, y) of a gridworld state."""
    return state % GRID_SIZE, state // GRID_SIZE


def _in_grid(x: int, y: int) -> bool:
    return 0 <= x < GRID_SIZE and 0 <= y < GRID_SIZE


@lru_cache(maxsize=1)
def _gridworld_kernels() -> tuple[np.ndarray, np.ndarray]:
    """(P_intended, P_domain): the noise-0 kernel and the uniform-over-noise-domain kernel."""
    intended = np.zeros((N_STATES, 4, N_STATES))
    domain = np.zeros((N_STATES, 4, N_STATES))
    for s in range(N_STATES):
        x, y = coordinates(s)
        neighbours = [state_of(x + dx, y + dy) for dx, dy in ACTION_DELTAS
                      if _in_grid(x + dx, y + dy)]
        for a, (dx, dy) in enumerate(ACTION_DELTAS):
            if s == GOAL_STATE:                     # absorbing: every action stays
                intended[s, a, s] = domain[s, a, s] = 1.0
                continue
            target = state_of(x + dx, y + dy) if _in_grid(x + dx, y + dy) else s
            cells = neighbours if target in neighbours else [*neighbours, target]
            intended[s, a, target] = 1.0
            domain[s, a, cells] = 1.0 / len(cells)
    for array in (intended, domain):
        array.setflags(write=False)
    return intended, domain


@lru_cache(maxsize=1)
def _gridworld_signals() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    reward = np.zeros((N_STATES, 4))
    reward[GOAL_STATE] = GOAL_REWARD
    cost = np.zeros((N_STATES, 4))
    cost[list(HAZARD_STATES)] = HAZARD_COST
    rho = np.ones(N_STATES)
    rho[list(HAZARD_STATES)] = 0.0
    rho /= rho.sum()
    return reward, cost, rho


def gridworld_kernel(noise) -> np.ndarray:
    """Transition kernel(s) of the gridworld at ``noise`` (scalar -> (S,A,S); (n,) -> (n,S,A,S)).

    The intended cell gets ``(1 - p) + p/|D|`` and every other cell of the noise domain ``p/|D|``
    (D = in-grid 4-neighbours, plus the intended cell if it is not one of them).
    """
    p = np.asarray(noise, dtype=np.float64)
    valid = (p >= 0.0) & (p <= 1.0)
    if not np.all(valid):
        index = tuple(int(i) for i in np.argwhere(~valid)[0]) if p.ndim else None
        raise InvalidCMDPError("noise", "a probability in [0, 1]", index=index,
                               detail=f"got {float(p[index] if p.ndim else p)!r}")
    intended, domain = _gridworld_kernels()
    return intended + p[..., None, None, None] * (domain - intended)


def gridworld(noise: float, gamma: float = 0.9, budget: float = 1.5) -> CMDP:
    """The paper's 7x7 gridworld (PAPER.md section 7), cost form.

    Goal 45 (x=3, y=6) is absorbing with reward 10 per step; hazards x in {2, 4}, y in 1..4 cost 10
    per step; rho is uniform over the 41 non-hazard states; feasible iff discounted cost <= budget.
    """
    reward, cost, rho = _gridworld_signals()
    return CMDP(P=gridworld_kernel(float(noise)), r=reward, cost=cost, budget=budget, rho=rho,
                gamma=gamma)


def random_cmdp(n_states: int, n_actions: int, seed, n_constraints: int | None = None,
                gamma: float = 0.9, concentration: float = 1.0, budget=None) -> CMDP:
    """A random CMDP for tests: Dirichlet(concentration) transition rows and initial distribution,
    rewards and costs uniform on [0, 1].

    ``n_constraints=None`` gives an (S, A) cost and a scalar budget; an integer K gives (S, A, K).
    The default budget is the uniform policy's exact cost value, so the task is feasible (the
    uniform policy meets it with equality) and the constraint is often active at the optimum.
    """
    for name, value in (("n_states", n_states), ("n_actions", n_actions)):
        if int(value) != value or value < 1:
            raise InvalidCMDPError(name, "a positive integer", detail=f"got {value!r}")
    if not concentration > 0:
        raise InvalidCMDPError("concentration", "a positive number",
                               detail=f"got {concentration!r}")
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(n_states, concentration), size=(n_states, n_actions))
    rho = rng.dirichlet(np.full(n_states, concentration))
    r = rng.random((n_states, n_actions))
    cost_shape = (n_states, n_actions) if n_constraints is None else (
        n_states, n_actions, n_constraints)
    cost = rng.random(cost_shape)
    if budget is None:
        placeholder = 0.0 if n_constraints is None else np.zeros(n_constraints)
        probe = CMDP(P, r, cost, placeholder, rho, gamma)
        budget = evaluate(probe, uniform_policy(n_states, n_actions)).cost_value
    return CMDP(P, r, cost, budget, rho, gamma)
