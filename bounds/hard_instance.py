"""The lower-bound hard family of App. G (Section 5) and an explicit sample lower bound.

Construction (2^m tasks, ``3 * 2^(m+1) - 1`` states each):

* Routing: a binary tree o_0 .. o_{2^(m+1)-2}, rho(o_0) = 1; (o_i, a_j) -> o_{2i+j+1}; leaf
  o_{2^m - 1 + k} moves to gate s_k. Zero reward and utility. A gate is reached at time m + 1.
* Gate k has four states. At s_k, a0 commits to the loop s~_k, a1 to the safe sink z'_k. In
  s~_k (either action) the agent earns reward 1 and utility +1 and stays with probability p_k,
  else falls into the sink z_k, which costs utility ``c_z`` per step forever. z'_k pays utility
  ``c_safe = xi (1-gamma) / gamma^(m+2)`` per step, so always choosing a1 has utility exactly xi
  (Slater margin, Assumption 2.1) and no policy does better.
* Why it is hard (our design; the paper leaves the gadget open). The risky branch's utility from
  s~ is ``U(p) = V(p) (1 - c_z gamma (1-p)/(1-gamma))`` with ``V(p) = 1/(1 - gamma p)``: gross
  utilities of order 1/(1-gamma) that nearly cancel. ``c_z`` is set so that ``U(q0) = -S``,
  ``S = c_safe/(1-gamma)`` (of order xi): the optimal gate policy mixes a0 and a1 about evenly
  and the constraint is active. Then ``dU/dp ~ 1/((1-gamma)^2 (1+c1))`` while the slack is ~xi,
  so a loop-probability change of ``a = Theta((1-gamma)^3 xi eps)`` moves the best feasible
  reward by Theta(eps): a policy must tell q1 from q2 to be eps-optimal AND feasible (routing to
  the q2 gate with its optimal mixing is infeasible where that gate has q0; routing to the q1 gate
  loses more than eps where another gate has q2). The loss is about
  ``(c3 - c2) eps gamma^(2d+2) / 4`` (d the gate depth: m + 1 for the routing tree, 1 for the
  flat root), so the default ``c3 = c2 + 8 / gamma^(2d+2)`` makes it
  exceed eps; :func:`check_hard_family` verifies it exactly.
* Null task M_0: p_0 = q1 and p_k = q0 (k >= 1). Task M_i (i >= 1): as M_0 but p_i = q2. With
  ``q0 = 1 - c1 (1-gamma)/gamma``, ``q1 = q0 + a1``, ``q2 = q0 + a2``, ``a1 = c2 (1 - gamma q0)^2
  eps' / gamma``, ``a2 = c3 (1 - gamma q0)^2 eps' / gamma``, ``eps' = (1-gamma) xi eps``
  (Section 5 of the paper). Tasks differ only in one loop probability, so d(M_i, M_j) = a2.

:func:`check_hard_family` verifies every claimed property exactly with ``tabular``;
:func:`sample_lower_bound` is the explicit Bretagnolle-Huber bound: an algorithm that returns, with
probability >= 1 - delta on every task, a policy that is eps-optimal and feasible must (the sets
being disjoint between M_0 and each M_i) tell M_0 from every M_i; the divergence decomposition
gives, under M_0, ``E[N_i] KL(Bern(q0) || Bern(q2)) >= ln(1/(4 delta))`` for each gate i >= 1,
hence at least ``(2^m - 1) ln(1/(4 delta)) / KL(Bern(q0) || Bern(q2))`` samples of the loop
transitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from safepce import tabular
from safepce.tabular import CMDP
from safepce.tabular.distributions import FiniteUniform
from safepce.tabular.errors import InputError

#: LP optima meet their budget up to round-off; a slack above -1e-9 counts as feasible
SLACK_TOLERANCE = 1e-9


class HardFamilyError(InputError):
    """The hard family's parameters are out of range."""


@dataclass(frozen=True, eq=False)
class HardFamily:
    m: int
    gamma: float
    xi: float
    eps: float
    q0: float
    q1: float
    q2: float
    a1: float
    a2: float
    c_z: float
    c_safe: float
    tasks: tuple[CMDP, ...]
    routing: str = "tree"

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def distribution(self) -> FiniteUniform:
        """D uniform over the 2^m tasks."""
        return FiniteUniform(list(self.tasks))

    @property
    def covering_radius(self) -> float:
        """xi eps (1-gamma)^3, the radius of Theorem 5.1's covering number."""
        return self.xi * self.eps * (1 - self.gamma) ** 3

    @property
    def routing_states(self) -> int:
        """States before the gates: 2^(m+1) - 1 tree nodes, or the one root of ``flat``."""
        return 2 * self.n_tasks - 1 if self.routing == "tree" else 1

    def gate_state(self, gate: int) -> int:
        return self.routing_states + 4 * gate

    def loop_state(self, gate: int) -> int:
        return self.gate_state(gate) + 1

    def loop_mask(self, gates=None) -> np.ndarray:
        """Boolean mask over states: the loop states s~_k of ``gates`` (default: every gate
        k >= 1, the gates whose loop samples Theorem 5.1's bound counts on the null task)."""
        gates = range(1, self.n_tasks) if gates is None else gates
        mask = np.zeros(self.tasks[0].n_states, dtype=bool)
        mask[[self.loop_state(k) for k in gates]] = True
        return mask


def hard_family(m: int, gamma: float, xi: float, eps: float, c1: float = 1.5, c2: float = 1.0,
                c3: float | None = None, routing: str = "tree") -> HardFamily:
    """Build the 2^m tasks of App. G (see the module docstring for every number).

    ``routing="tree"``: the binary routing tree (2 actions; a gate is reached at time m + 1).
    ``routing="flat"``: one root with 2^m actions, action k moving to gate s_k at time 1 (at the
    gates action 0 commits to the loop and every other action to the safe sink; elsewhere the
    actions coincide). The gate depth d (m + 1 or 1) enters only through ``c_safe = xi (1-gamma)
    / gamma^(d+1)`` and the default c3, so a flat family exists for every m where the tree's
    m = 0 family does (the tree needs ``xi (1-gamma) / gamma^(m+2) <= 1`` and more).

    ``c3`` defaults to ``c2 + 8 / gamma^(2d+2)`` (large enough for distinct eps-optimal sets).
    """
    if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m <= 10:
        raise HardFamilyError(f"m: expected an integer in [0, 10]; got {m!r}")
    if not 0 < gamma < 1:
        raise HardFamilyError(f"gamma: expected a number in (0, 1); got {gamma!r}")
    if not (xi > 0 and eps > 0):
        raise HardFamilyError(f"xi, eps: expected positive numbers; got {xi!r}, {eps!r}")
    if routing not in ("tree", "flat"):
        raise HardFamilyError(f"routing: expected 'tree' or 'flat'; got {routing!r}")
    depth = m + 1 if routing == "tree" else 1
    if c3 is None:
        c3 = c2 + 8 / gamma ** (2 * depth + 2)
    if not 0 < c2 < c3:
        raise HardFamilyError(f"c2, c3: expected 0 < c2 < c3; got {c2}, {c3}")
    q0 = 1 - c1 * (1 - gamma) / gamma
    eps_prime = (1 - gamma) * xi * eps
    a1 = c2 * (1 - gamma * q0) ** 2 * eps_prime / gamma
    a2 = c3 * (1 - gamma * q0) ** 2 * eps_prime / gamma
    if not (0 < q0 < 1 and a2 < min(q0, 1 - q0) / 2):
        raise HardFamilyError(
            f"c1, eps, xi: need 0 < q0 < 1 and a1 < a2 < min(q0, 1-q0)/2; got q0 = {q0:.4g}, "
            f"a2 = {a2:.4g}")
    c_safe = xi * (1 - gamma) / gamma ** (depth + 1)
    S = c_safe / (1 - gamma)
    # U(q0) = V(q0) (1 - c_z gamma (1-q0)/(1-gamma)) = -S
    c_z = (1 + S * (1 - gamma * q0)) * (1 - gamma) / (gamma * (1 - q0))
    if c_safe > 1 or c_z > 1:
        raise HardFamilyError(
            f"xi: the safe utility {c_safe:.4g} or sink utility {c_z:.4g} leaves [-1, 1]; lower "
            "xi or m, raise gamma, or raise c1")
    risky_q2 = (1 - c_z * gamma * (1 - q0 - a2) / (1 - gamma)) / (1 - gamma * (q0 + a2))
    if risky_q2 >= 0:
        raise HardFamilyError(
            f"eps: too large for the construction: the loop branch at q2 has utility "
            f"{risky_q2:.4g} >= 0, so the constraint would not bind; lower eps")
    n = 2 ** m
    tree = routing == "tree"
    n_routing = 2 * n - 1 if tree else 1
    n_actions = 2 if tree else max(2, n)
    S_states = n_routing + 4 * n
    P = np.zeros((S_states, n_actions, S_states))
    r = np.zeros((S_states, n_actions))
    c = np.zeros((S_states, n_actions))
    if tree:
        for node in range(n_routing):
            for a in (0, 1):
                child = 2 * node + a + 1
                P[node, a, child if child < n_routing else n_routing + 4 * (node - (n - 1))] = 1
    else:
        for a in range(n_actions):
            P[0, a, n_routing + 4 * min(a, n - 1)] = 1.0
    for k in range(n):
        s, loop, sink, safe = (n_routing + 4 * k + j for j in range(4))
        P[s, 0, loop] = 1.0
        P[s, 1:, safe] = 1.0
        P[sink, :, sink] = P[safe, :, safe] = 1.0
        r[loop, :] = 1.0
        c[loop, :] = 1.0
        c[sink, :] = -c_z
        c[safe, :] = c_safe
    rho = np.zeros(S_states)
    rho[0] = 1.0
    budget = 1.0 / (1 - gamma)                  # cost = b (1-gamma) - c = 1 - c in [0, 2]
    cost = 1.0 - c

    def task(p):
        kernel = P.copy()
        for k in range(n):
            loop, sink = n_routing + 4 * k + 1, n_routing + 4 * k + 2
            kernel[loop, :, loop], kernel[loop, :, sink] = p[k], 1 - p[k]
        return CMDP(kernel, r, cost, budget, rho, gamma)

    null = [q0 + a1] + [q0] * (n - 1)
    tasks = [task(null)]
    for i in range(1, n):
        probabilities = list(null)
        probabilities[i] = q0 + a2
        tasks.append(task(probabilities))
    return HardFamily(m=m, gamma=gamma, xi=xi, eps=eps, q0=q0, q1=q0 + a1, q2=q0 + a2, a1=a1,
                      a2=a2, c_z=c_z, c_safe=c_safe, tasks=tuple(tasks), routing=routing)


def bernoulli_kl(p: float, q: float) -> float:
    """KL(Bern(p) || Bern(q))."""
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def sample_lower_bound(family: HardFamily, delta: float) -> float:
    """``(2^m - 1) ln(1/(4 delta)) / KL(Bern(q0) || Bern(q2))``: loop-transition samples any
    algorithm needs on the null task M_0 (Bretagnolle-Huber + divergence decomposition), valid
    for delta < 1/4 when M_0's and each M_i's eps-optimal feasible policies are disjoint."""
    if not 0 < delta < 0.25:
        raise HardFamilyError(f"delta: expected a number in (0, 1/4); got {delta!r}")
    return (family.n_tasks - 1) * math.log(1 / (4 * delta)) / bernoulli_kl(family.q0, family.q2)


def check_hard_family(family: HardFamily) -> dict:
    """Every property App. G needs, computed exactly; margins > 0 mean the property holds.

    ``slater_margin``: max over policies of V_c (paper units) minus xi (>= 0 up to round-off);
    ``distance_error``: max |d(M_i, M_j) - a2|; ``covering``: a2 - radius (> 0: each ball holds one
    task, so C = 2^m for delta < 2^-m); ``distinct``: min over i != j of how far the optimum of M_i
    is from being eps-optimal and feasible on M_j (paper units): ``max(V*_j - V_j(pi*_i) - eps,
    -slack_j(pi*_i))``; ``constraint_active``: min over tasks of the Lagrange multiplier.
    """
    tasks = family.tasks
    forms = [t.utility_form for t in tasks]
    best_utility = [float(f.cost_value_to_paper(tabular.minimum_cost(t)))
                    for t, f in zip(tasks, forms, strict=True)]
    solutions = [tabular.solve(t, backend="highspy") for t in tasks]
    distances = [tabular.distance(a, b) for i, a in enumerate(tasks) for b in tasks[i + 1:]]
    distinct = math.inf
    for i, solution in enumerate(solutions):
        for j, other in enumerate(tasks):
            if i == j:
                continue
            value = tabular.evaluate(other, solution.policy)
            form = forms[j]
            gap = float(form.reward_value_to_paper(solutions[j].reward_value - value.reward_value))
            slack = float(form.cost_value_to_paper(value.cost_value))
            distinct = min(distinct, max(gap - family.eps, -slack))
    return {
        "n_tasks": family.n_tasks,
        "n_states": tasks[0].n_states,
        "slater_margin": min(best_utility) - family.xi,
        "distance_error": max((abs(d - family.a2) for d in distances), default=0.0),
        "covering": family.a2 - family.covering_radius,
        "distinct": distinct if family.n_tasks > 1 else math.nan,
        "constraint_active": min(float(s.multipliers) for s in solutions),
        "optimal_values": [float(f.reward_value_to_paper(s.reward_value))
                           for f, s in zip(forms, solutions, strict=True)],
    }


@dataclass(frozen=True)
class Identification:
    """One run of :func:`sequential_identification`: loop samples used, the task it named, and
    whether the returned policy (that task's LP optimum) is eps-optimal and feasible on the true
    task (checked exactly)."""

    samples: int
    identified: int
    correct: bool
    eps_optimal_and_feasible: bool


def sequential_identification(family: HardFamily, task: int, delta: float, seed) -> Identification:
    """A generative-model algorithm for the hard family: at each gate i >= 1 in turn, a sequential
    probability ratio test of Bern(q0) against Bern(q2) on draws of (s~_i, a0), with error
    delta / 2^m per gate (Wald thresholds ln((1 - d)/d)); the first gate decided q2 names M_i,
    none names M_0. Returns the loop samples drawn and checks the returned policy exactly."""
    if not 0 < delta < 0.5:
        raise HardFamilyError(f"delta: expected a number in (0, 1/2); got {delta!r}")
    if not 0 <= task < family.n_tasks:
        raise HardFamilyError(f"task: expected an index in [0, {family.n_tasks}); got {task!r}")
    rng = np.random.default_rng(seed)
    truth = family.tasks[task]
    per_gate = delta / family.n_tasks
    upper = math.log((1 - per_gate) / per_gate)
    step_one = math.log(family.q2 / family.q0)              # a stay: evidence for q2
    step_zero = math.log((1 - family.q2) / (1 - family.q0))  # an exit: evidence for q0
    # draw in chunks of about a tenth of the expected test length (Wald: threshold / drift)
    drift = bernoulli_kl(family.q0, family.q2)
    chunk = int(min(2**22, max(4096, upper / drift / 10)))
    samples, identified = 0, 0
    for gate in range(1, family.n_tasks):
        p = truth.P[family.loop_state(gate), 0, family.loop_state(gate)]
        llr = 0.0
        while -upper < llr < upper:
            draws = rng.random(chunk) < p
            path = llr + np.cumsum(np.where(draws, step_one, step_zero))
            crossed = np.flatnonzero((path >= upper) | (path <= -upper))
            if crossed.size:
                samples += int(crossed[0]) + 1
                llr = float(path[crossed[0]])
            else:
                samples += draws.size
                llr = float(path[-1])
        if llr >= upper:
            identified = gate
            break
    policy = tabular.solve(family.tasks[identified], backend="highspy").policy
    optimum = tabular.solve(truth, backend="highspy").reward_value
    value = tabular.evaluate(truth, policy)
    gap = float(truth.utility_form.reward_value_to_paper(optimum - value.reward_value))
    return Identification(samples=samples, identified=identified, correct=identified == task,
                          eps_optimal_and_feasible=bool(gap <= family.eps
                                                        and value.slack >= -SLACK_TOLERANCE))


def hard_distribution(m: int = 2, gamma: float = 0.9, xi: float = 0.1, eps: float = 0.1
                      ) -> FiniteUniform:
    """D of Theorem 5.1: uniform over the 2^m tasks of :func:`hard_family` (registered as the
    family ``hard``; every pair of tasks is a2 apart, more than the radius xi eps (1-gamma)^3)."""
    return hard_family(m, gamma, xi, eps).distribution


# registered as the family ``hard`` in safepce.tabular.registry (by name, imported on use)


def hard_families():
    """A hypothesis strategy of App. G hard families (``safepce[testing]``): (m, gamma, xi, eps)
    among settings where :func:`check_hard_family` holds, as task distributions (uniform D);
    the bounds-side companion of :mod:`safepce.tabular.strategies` (tabular cannot import
    bounds)."""
    from hypothesis import strategies as st

    settings = [(1, 0.9, 0.1, 0.1), (2, 0.9, 0.1, 0.1), (1, 0.8, 0.2, 0.1)]
    return st.sampled_from(settings).map(lambda s: hard_distribution(*s))
