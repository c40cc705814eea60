"""A Gymnasium view of any :class:`tabular.CMDP`, and an importer from Gymnasium's toy_text.

Gymnasium is optional (``pip install 'safepce[gym]'``). The environment returns the reward of
each step and puts the step's cost (task units; a float, or an array for several constraints) in
``info["cost"]``; the budget, discount and constraint form are attributes of the environment
(``env.unwrapped.budget``, ``.gamma``, ``.cmdp``), so an agent can check feasibility itself:
a policy is feasible iff ``E[sum_t gamma^t cost_t] <= budget``.
"""

from __future__ import annotations

import numpy as np

from .cmdp import CMDP, InvalidCMDPError


def _gymnasium():
    try:
        import gymnasium
    except ImportError:
        raise ImportError("tabular.gym needs Gymnasium: pip install 'safepce[gym]'") from None
    return gymnasium


def as_gym_env(cmdp: CMDP, horizon: int | None = None):
    """A ``gymnasium.Env`` that simulates ``cmdp``: Discrete(S) observations, Discrete(A)
    actions, start state from rho, episodes truncated after ``horizon`` steps (None: never)."""
    gymnasium = _gymnasium()
    if not isinstance(cmdp, CMDP):
        raise InvalidCMDPError("cmdp", "a tabular.CMDP", detail=f"got {type(cmdp).__name__}")
    if horizon is not None and (int(horizon) != horizon or horizon < 1):
        raise InvalidCMDPError("horizon", "a positive integer or None", detail=f"got {horizon!r}")

    class CMDPEnv(gymnasium.Env):
        metadata = {"render_modes": []}

        def __init__(self):
            self.cmdp = cmdp
            self.budget = cmdp.budget
            self.gamma = cmdp.gamma
            self.horizon = horizon
            self.observation_space = gymnasium.spaces.Discrete(cmdp.n_states)
            self.action_space = gymnasium.spaces.Discrete(cmdp.n_actions)
            self.state = 0
            self.t = 0

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.state = int(self.np_random.choice(cmdp.n_states, p=cmdp.rho))
            self.t = 0
            return self.state, {}

        def step(self, action):
            if not self.action_space.contains(action):
                raise ValueError(f"action: expected an integer in [0, {cmdp.n_actions}); "
                                 f"got {action!r}")
            s, a = self.state, int(action)
            cost = cmdp.cost[s, a]
            self.state = int(self.np_random.choice(cmdp.n_states, p=cmdp.P[s, a]))
            self.t += 1
            truncated = self.horizon is not None and self.t >= self.horizon
            info = {"cost": float(cost) if np.ndim(cost) == 0 else np.array(cost)}
            return self.state, float(cmdp.r[s, a]), False, truncated, info

    return CMDPEnv()


def from_toy_text(env, cost=None, budget=0.0, gamma: float = 0.99, rho=None) -> CMDP:
    """A :class:`tabular.CMDP` from a Gymnasium toy_text environment's ``env.unwrapped.P``.

    ``P[s][a]`` lists ``(probability, next_state, reward, terminated)``. Rewards become their
    expectation over next states (values are unchanged); terminating transitions lead to one
    extra absorbing state (index S) with zero reward and cost. ``cost`` is an (S, A) array of
    non-negative per-step costs (default zero), ``rho`` the start distribution (default: the
    environment's ``initial_state_distrib``).
    """
    table = getattr(getattr(env, "unwrapped", env), "P", None)
    if not isinstance(table, dict) or not table:
        raise InvalidCMDPError("env", "a toy_text environment with a transition table "
                               "env.unwrapped.P")
    n_states = len(table)
    n_actions = len(table[0])
    terminal = n_states
    P = np.zeros((n_states + 1, n_actions, n_states + 1))
    r = np.zeros((n_states + 1, n_actions))
    for s, actions in table.items():
        for a, outcomes in actions.items():
            for probability, next_state, reward, terminated in outcomes:
                P[s, a, terminal if terminated else next_state] += probability
                r[s, a] += probability * reward
    P[terminal, :, terminal] = 1.0
    full_cost = np.zeros((n_states + 1, n_actions))
    if cost is not None:
        cost = np.asarray(cost, dtype=np.float64)
        if cost.shape != (n_states, n_actions):
            raise InvalidCMDPError("cost", f"shape (S, A) = {(n_states, n_actions)}",
                                   detail=f"got shape {cost.shape}")
        full_cost[:n_states] = cost
    if rho is None:
        rho = getattr(getattr(env, "unwrapped", env), "initial_state_distrib", None)
        if rho is None:
            raise InvalidCMDPError("rho", "a start distribution (the environment has no "
                                   "initial_state_distrib)")
    start = np.zeros(n_states + 1)
    start[:n_states] = np.asarray(rho, dtype=np.float64)
    return CMDP(P, r, full_cost, budget, start, gamma)
