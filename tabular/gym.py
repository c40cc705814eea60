"""A Gymnasium view of any :class:`safepce.tabular.CMDP`, and an importer from Gymnasium's toy_text.

Gymnasium is optional (``pip install 'safepce[gym]'``). Importing this module registers
``safepce/Gridworld-v0`` (the paper's gridworld; kwarg ``noise``, default 0.1) and
``safepce/CMDP-v0`` (any CMDP: ``gymnasium.make("safepce/CMDP-v0", cmdp=task, horizon=H)``).
The environment returns the reward of each step and puts the step's cost (task units; a float,
or an array for several constraints) in ``info["cost"]``; the budget, discount and constraint
form are attributes of the environment (``env.unwrapped.budget``, ``.gamma``, ``.cmdp``), so an
agent can check feasibility itself: a policy is feasible iff ``E[sum_t gamma^t cost_t] <=
budget``, a discounted limit (not an undiscounted per-episode cost limit).
"""

from __future__ import annotations

import numpy as np

from .cmdp import CMDP, InvalidCMDPError

try:
    import gymnasium
except ImportError:          # optional: pip install 'safepce[gym]'
    gymnasium = None

#: Gymnasium ids registered by this module
GRIDWORLD_ID = "safepce/Gridworld-v0"
CMDP_ID = "safepce/CMDP-v0"


def _require_gymnasium() -> None:
    if gymnasium is None:
        raise ImportError("safepce.tabular.gym needs Gymnasium: pip install 'safepce[gym]'")


_Env = gymnasium.Env if gymnasium is not None else object


class CMDPEnv(_Env):
    """A Gymnasium environment simulating a :class:`safepce.tabular.CMDP`.

    Discrete(S) observations, Discrete(A) actions, the start state drawn from rho, episodes
    truncated after ``horizon`` steps (None: never; the CMDP itself never terminates). ``step``
    returns the step's reward and puts its cost (task units) in ``info["cost"]``. ``budget`` is
    a limit on the *discounted* expected cost ``E[sum_t gamma^t cost_t]`` with ``gamma`` the
    CMDP's discount, not an undiscounted per-episode cost limit such as OmniSafe's
    ``cost_limit``. The environment pickles (it holds only arrays and numbers).
    """

    metadata = {"render_modes": []}

    def __init__(self, cmdp: CMDP | None = None, horizon: int | None = None,
                 noise: float | None = None):
        _require_gymnasium()
        if cmdp is None:
            from .families import gridworld

            cmdp = gridworld(0.1 if noise is None else noise)
        if not isinstance(cmdp, CMDP):
            raise InvalidCMDPError("cmdp", "a tabular.CMDP", detail=f"got {type(cmdp).__name__}")
        if horizon is not None and (isinstance(horizon, bool) or int(horizon) != horizon
                                    or horizon < 1):
            raise InvalidCMDPError("horizon", "a positive integer or None",
                                   detail=f"got {horizon!r}")
        self.cmdp = cmdp
        self.budget = cmdp.budget
        self.gamma = cmdp.gamma
        self.horizon = None if horizon is None else int(horizon)
        self.observation_space = gymnasium.spaces.Discrete(cmdp.n_states)
        self.action_space = gymnasium.spaces.Discrete(cmdp.n_actions)
        self.state = 0
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = int(self.np_random.choice(self.cmdp.n_states, p=self.cmdp.rho))
        self.t = 0
        return self.state, {}

    def step(self, action):
        cmdp = self.cmdp
        if not self.action_space.contains(action):
            raise ValueError(f"action: expected an integer in [0, {cmdp.n_actions}); "
                             f"got {action!r}")
        s, a = self.state, int(action)
        cost = cmdp.cost[s, a]
        if cmdp.is_sparse:
            row = cmdp.transition_matrix[[s * cmdp.n_actions + a]]
            self.state = int(self.np_random.choice(row.indices, p=row.data))
        else:
            self.state = int(self.np_random.choice(cmdp.n_states, p=cmdp.P[s, a]))
        self.t += 1
        truncated = self.horizon is not None and self.t >= self.horizon
        info = {"cost": float(cost) if np.ndim(cost) == 0 else np.array(cost)}
        return self.state, float(cmdp.r[s, a]), False, truncated, info


def as_gym_env(cmdp: CMDP, horizon: int | None = None) -> CMDPEnv:
    """A :class:`CMDPEnv` that simulates ``cmdp`` (``gymnasium.make(CMDP_ID, cmdp=cmdp,
    horizon=...)`` gives the same environment through the registry)."""
    return CMDPEnv(cmdp, horizon)


def _register() -> None:
    from safepce import register_gym_envs

    register_gym_envs()


_register()


def from_toy_text(env, cost=None, budget=0.0, gamma: float = 0.99, rho=None) -> CMDP:
    """A :class:`safepce.tabular.CMDP` from a Gymnasium toy_text environment's ``env.unwrapped.P``.

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
