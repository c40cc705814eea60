"""The premise of the explicit lower bound (:func:`safepce.bounds.hard_instance.sample_lower_bound`)
as a ratio claim for :mod:`safepce.bounds.falsify`.

The Bretagnolle-Huber argument behind the bound needs, for the null task M_0 and every other task
M_i of App. G's hard family, that **no single policy** is eps-optimal and feasible on both
(their good sets are disjoint). :func:`~safepce.bounds.hard_instance.check_hard_family` checks it
for the tasks' optimal policies only; here the search runs over the construction's constants
(m, gamma, xi, eps, c1; c2 and c3 at their defaults) *and* over every policy (routing
probabilities at the tree's nodes and the mix at each gate), maximising

``ratio = 1 + min(eps - gap_0(pi), slack_0(pi), eps - gap_i(pi), slack_i(pi)) / eps``

(gaps and slacks in the paper's units), which exceeds 1 exactly when pi is eps-optimal and
feasible on both tasks. The exact route computes the same numbers in rational arithmetic from the
tasks' stored arrays by the gate structure (values of the loop, sink and safe states in closed
form, the routing distribution as products along the tree, each task's optimum as the finite LP
over gate outcomes), without the toolkit's evaluation or LP solver.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from safepce import tabular

from .falsify import FalsifyError, RatioClaim, logit, sigmoid
from .hard_instance import HardFamilyError, hard_family


@dataclass(frozen=True, eq=False)
class HardPolicyInstance:
    """Constants of the hard family, the task index i >= 1 compared with M_0, and a policy:
    ``routing[node]`` = probability of a0 at routing node ``node`` (2^(m+1) - 1 of them) and
    ``gate_mix[k]`` = probability of a0 (the loop) at gate k."""

    m: int
    gamma: float
    xi: float
    eps: float
    c1: float
    task: int
    routing: np.ndarray
    gate_mix: np.ndarray

    def size(self) -> tuple[int, int]:
        return (self.m, 0)

    def family(self):
        return hard_family(self.m, self.gamma, self.xi, self.eps, c1=self.c1)

    def policy(self, n_states: int) -> np.ndarray:
        n = 2 ** self.m
        policy = np.full((n_states, 2), 0.5)
        routing = 2 * n - 1
        policy[:routing, 0], policy[:routing, 1] = self.routing, 1 - self.routing
        gates = routing + 4 * np.arange(n)
        policy[gates, 0], policy[gates, 1] = self.gate_mix, 1 - self.gate_mix
        return policy

    def describe(self) -> str:
        return (f"m = {self.m}, gamma = {self.gamma:.6g}, xi = {self.xi:.6g}, eps = "
                f"{self.eps:.6g}, c1 = {self.c1:.6g}; M_0 against M_{self.task}; routing a0 "
                f"probabilities {np.array2string(self.routing, precision=4, separator=',')}; "
                f"gate loop probabilities "
                f"{np.array2string(self.gate_mix, precision=4, separator=',')}")

    def save(self, path: Path) -> None:
        np.savez(path, m=np.int64(self.m), gamma=np.float64(self.gamma), xi=np.float64(self.xi),
                 eps=np.float64(self.eps), c1=np.float64(self.c1), task=np.int64(self.task),
                 routing=self.routing, gate_mix=self.gate_mix)

    @classmethod
    def load(cls, path: Path) -> HardPolicyInstance:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(int(data["m"]), float(data["gamma"]), float(data["xi"]),
                           float(data["eps"]), float(data["c1"]), int(data["task"]),
                           np.array(data["routing"], dtype=np.float64),
                           np.array(data["gate_mix"], dtype=np.float64))
        except (OSError, KeyError, ValueError) as exc:
            raise FalsifyError(f"{path}: not a hard-family counterexample ({exc})") from None


def _goodness_ratio(eps, values, optima):
    """1 + min(eps - gap_0, slack_0, eps - gap_i, slack_i) / eps from (V_r, V_c) per task (floats
    or Fractions alike)."""
    worst = min(min(eps - (optimum - reward), utility)
                for (reward, utility), optimum in zip(values, optima, strict=True))
    return 1 + worst / eps


def _paper_values(task, policy) -> tuple[float, float]:
    form, exact = task.utility_form, tabular.evaluate(task, policy)
    return (float(form.reward_value_to_paper(exact.reward_value)),
            float(form.cost_value_to_paper(exact.cost_value)))


@lru_cache(maxsize=64)
def _pair(m, gamma, xi, eps, c1, task):
    """(M_0, M_i), their LP optima (paper units) and whether the toolkit's own check holds for
    the pair: neither task's optimal policy is eps-optimal and feasible on the other (what
    :func:`~safepce.bounds.hard_instance.check_hard_family` calls ``distinct``)."""
    family = hard_family(m, gamma, xi, eps, c1=c1)
    tasks = (family.tasks[0], family.tasks[task])
    solutions = [tabular.solve(t) for t in tasks]
    optima = [float(t.utility_form.reward_value_to_paper(s.reward_value))
              for t, s in zip(tasks, solutions, strict=True)]
    distinct = True
    for i, j in ((0, 1), (1, 0)):
        reward, utility = _paper_values(tasks[j], solutions[i].policy)
        distinct &= max(optima[j] - reward - eps, -utility) > 0
    return tasks, optima, distinct


def _key(instance: HardPolicyInstance) -> tuple:
    return (instance.m, instance.gamma, instance.xi, instance.eps, instance.c1, instance.task)


def toolkit_ratio(instance: HardPolicyInstance) -> float:
    """By the toolkit: tabular.evaluate of the policy and tabular.solve's optima."""
    tasks, optima, _ = _pair(*_key(instance))
    policy = instance.policy(tasks[0].n_states)
    values = [_paper_values(task, policy) for task in tasks]
    return float(_goodness_ratio(instance.eps, values, optima))


def _exact_task_values(task, instance: HardPolicyInstance):
    """(V_r(pi), V_c(pi), V*) of one hard task in rational arithmetic from its arrays, in the
    paper's units."""
    F = Fraction
    gamma, m, n = F(task.gamma), instance.m, 2 ** instance.m
    routing_states = 2 * n - 1
    budget = F(float(task.budgets[0]))
    utility = [[budget * (1 - gamma) - F(float(task.cost[s, a])) for a in range(2)]
               for s in range(task.n_states)]
    reward = [[F(float(task.r[s, a])) for a in range(2)] for s in range(task.n_states)]
    # the paper's normalisation (as UtilityForm does it, here in exact arithmetic): rewards by
    # their largest value, utilities by their largest magnitude (both 1 up to round-off here)
    utility_scale = max(abs(u) for row in utility for u in row)
    reward_scale = max(max(row) for row in reward)
    utility = [[u / utility_scale for u in row] for row in utility]
    reward = [[x / reward_scale for x in row] for row in reward]
    outcomes = []                        # per gate: (loop reward, loop utility, safe utility)
    for k in range(n):
        s, loop, sink, safe = (routing_states + 4 * k + j for j in range(4))
        stay, fall = F(float(task.P[loop, 0, loop])), F(float(task.P[loop, 0, sink]))
        sink_utility = utility[sink][0] / (1 - gamma * F(float(task.P[sink, 0, sink])))
        safe_utility = utility[safe][0] / (1 - gamma * F(float(task.P[safe, 0, safe])))
        loop_reward = reward[loop][0] / (1 - gamma * stay)
        loop_utility = (utility[loop][0] + gamma * fall * sink_utility) / (1 - gamma * stay)
        outcomes.append((loop_reward, loop_utility, safe_utility))
    # routing: the probability of reaching each gate, a product along the tree
    reach = [F(0)] * n
    for leaf in range(n):
        node, probability = n - 1 + leaf, F(1)
        while node > 0:
            parent = (node - 1) // 2
            action = (node - 1) % 2                   # node = 2 parent + action + 1
            a0 = F(float(instance.routing[parent]))
            probability *= a0 if action == 0 else 1 - a0
            node = parent
        reach[leaf] = probability
    discount = gamma ** (m + 2)                       # gate at t = m + 1, its outcome at m + 2
    V_r = V_c = F(0)
    for k, (loop_reward, loop_utility, safe_utility) in enumerate(outcomes):
        beta = F(float(instance.gate_mix[k]))
        V_r += reach[k] * discount * beta * loop_reward
        V_c += reach[k] * discount * (beta * loop_utility + (1 - beta) * safe_utility)
    # the optimum: an LP over the outcome distribution (loop of gate k or a safe sink), whose
    # vertices mix at most two outcomes
    options = [(discount * lr, discount * lu) for lr, lu, _ in outcomes]
    options += [(F(0), discount * outcomes[0][2])]
    best = None
    for i, (r_i, u_i) in enumerate(options):
        if u_i >= 0:
            best = r_i if best is None else max(best, r_i)
        for r_j, u_j in options[i + 1:]:
            if (u_i < 0) != (u_j < 0):
                weight = u_j / (u_j - u_i)            # weight on i: weight u_i + (1-w) u_j = 0
                value = weight * r_i + (1 - weight) * r_j
                best = value if best is None else max(best, value)
    return V_r, V_c, best


def exact_ratio(instance: HardPolicyInstance) -> Fraction:
    family = instance.family()
    values, optima = [], []
    for task in (family.tasks[0], family.tasks[instance.task]):
        V_r, V_c, best = _exact_task_values(task, instance)
        values.append((V_r, V_c))
        optima.append(best)
    return _goodness_ratio(Fraction(instance.eps), values, optima)


def _premise(instance: HardPolicyInstance) -> bool:
    """The construction is valid at these constants (hard_family builds it), 1 <= i < 2^m, and
    the toolkit's own check holds for M_0 and M_i (their optimal policies are not good on the
    other task): the claim is that this optima-only check suffices for every policy."""
    if not 1 <= instance.task < 2 ** instance.m:
        return False
    try:
        return _pair(*_key(instance))[2]
    except HardFamilyError:
        return False


class HardPolicySpace:
    """Constants m in {1, 2, 3}, gamma in [0.7, 0.99], xi and eps in [0.005, 0.5], c1 in
    [1.05, 4], a task i >= 1 and a policy."""

    M = (1, 2, 3)
    GAMMAS = (0.7, 0.8, 0.9, 0.95, 0.99)
    XIS = (0.005, 0.02, 0.05, 0.1, 0.2, 0.4)
    EPSILONS = (0.005, 0.02, 0.05, 0.1, 0.2, 0.4)
    C1 = (1.05, 1.5, 2.0, 3.0)
    BOUNDS = {"gamma": (0.7, 0.99), "xi": (0.005, 0.5), "eps": (0.005, 0.5), "c1": (1.05, 4.0)}

    @staticmethod
    def load(path: Path) -> HardPolicyInstance:
        return HardPolicyInstance.load(path)

    def _instance(self, m, gamma, xi, eps, c1, task, routing, gate_mix):
        return HardPolicyInstance(int(m), float(gamma), float(xi), float(eps), float(c1),
                                  int(task), np.asarray(routing, dtype=np.float64),
                                  np.asarray(gate_mix, dtype=np.float64))

    def extremes(self, rng: np.random.Generator, n: int) -> Iterator[HardPolicyInstance]:
        for _ in range(n):
            m = int(rng.choice(self.M))
            tasks = 2 ** m
            task = int(rng.integers(1, tasks))
            # route between gate 0 (M_0's best) and gate `task` (M_i's best), or anywhere
            routing = np.where(rng.random(2 * tasks - 1) < 0.5,
                               rng.choice([0.0, 0.5, 1.0], 2 * tasks - 1),
                               rng.uniform(0, 1, 2 * tasks - 1))
            gate_mix = rng.uniform(0, 1, tasks)
            yield self._instance(m, rng.choice(self.GAMMAS), rng.choice(self.XIS),
                                 rng.choice(self.EPSILONS), rng.choice(self.C1), task, routing,
                                 gate_mix)

    def strategy(self):
        from hypothesis import strategies as st

        @st.composite
        def instances(draw):
            m = draw(st.sampled_from(self.M))
            tasks = 2 ** m
            unit = st.floats(0, 1)
            return self._instance(
                m, draw(st.sampled_from(self.GAMMAS)), draw(st.sampled_from(self.XIS)),
                draw(st.sampled_from(self.EPSILONS)), draw(st.sampled_from(self.C1)),
                draw(st.integers(1, tasks - 1)),
                draw(st.lists(unit, min_size=2 * tasks - 1, max_size=2 * tasks - 1)),
                draw(st.lists(unit, min_size=tasks, max_size=tasks)))

        return instances()

    def encode(self, instance: HardPolicyInstance) -> np.ndarray:
        scaled = [(getattr(instance, name) - low) / (high - low)
                  for name, (low, high) in self.BOUNDS.items()]
        return np.clip(np.concatenate([logit(np.array(scaled)), logit(instance.routing),
                                       logit(instance.gate_mix)]), -20, 20)

    def decode(self, x: np.ndarray, like: HardPolicyInstance) -> HardPolicyInstance:
        z = sigmoid(x)
        constants = {name: low + (high - low) * z[i]
                     for i, (name, (low, high)) in enumerate(self.BOUNDS.items())}
        tasks = 2 ** like.m
        routing, gate_mix = z[4:4 + 2 * tasks - 1], z[4 + 2 * tasks - 1:]
        return self._instance(like.m, constants["gamma"], constants["xi"], constants["eps"],
                              constants["c1"], like.task, routing, gate_mix)


HARD_DISJOINT = RatioClaim(
    "hard-family-disjoint", "Theorem 5.1 lower bound (its premise)",
    "where check_hard_family's optima-only test passes for M_0 and M_i, no policy at all is "
    "eps-optimal and feasible on both (App. G hard family, c2 and c3 at their defaults): the "
    "premise of the explicit Bretagnolle-Huber lower bound",
    "check", HardPolicySpace(), toolkit_ratio, exact_ratio, _premise, agreement=1e-6)

__all__ = ["HARD_DISJOINT", "HardPolicyInstance", "HardPolicySpace", "exact_ratio",
           "toolkit_ratio"]
