"""The solver's reuse of one sparse LU across deterministic policies (Woodbury updates), its
modified policy iteration and the bracket's improved start: each answer against a dense solve
computed here, each shortcut seen to be taken (a wrong update would be repaired by a fresh
factorisation and stay correct, so the tests also count factorisations)."""

from __future__ import annotations

import numpy as np
import pytest

from safepce import tabular
from safepce.tabular import lagrangian, linear
from safepce.tabular.families import random_sparse_cmdp, sparse_gridworld


def dense_matrix(task, actions):
    rows = np.arange(task.n_states) * task.n_actions + actions
    P = task.transition_matrix[rows].toarray()
    return np.eye(task.n_states) - task.gamma * P


@pytest.mark.parametrize("task", [random_sparse_cmdp(300, seed=4),
                                  sparse_gridworld(0.2, 18, gamma=0.95)],
                         ids=["random", "grid"])
def test_low_rank_solves_equal_dense_solves_without_new_factorisations(task):
    rng = np.random.default_rng(0)
    systems = linear.PolicySystems(task)
    reference = rng.integers(0, task.n_actions, task.n_states)
    systems.system(reference)
    assert systems.factorisations == 1
    budget = systems._column_budget
    pool = rng.choice(task.n_states, budget, replace=False)   # columns cached across policies
    b = rng.normal(size=task.n_states)
    for k in (1, 3, budget):
        actions = reference.copy()
        states = rng.choice(pool, k, replace=False)
        actions[states] = (actions[states] + 1 + rng.integers(0, task.n_actions - 1, k)) \
            % task.n_actions
        system = systems.system(actions)
        assert system.method == "lu-low-rank"
        M = dense_matrix(task, actions)
        x, y = system.solve(b), system.solve_transposed(b)
        scale = np.abs(b).max() / (1 - task.gamma)
        assert np.abs(x - np.linalg.solve(M, b)).max() <= 1e-10 * scale
        assert np.abs(y - np.linalg.solve(M.T, b)).sum() <= 1e-10 * np.abs(b).sum() / (
            1 - task.gamma)
    # every low-rank solve certified on its own: still the one factorisation
    assert systems.factorisations == 1 and systems.low_rank_solves >= 6


def test_a_policy_far_from_the_reference_is_factorised_anew():
    task = sparse_gridworld(0.2, 18, gamma=0.95)
    systems = linear.PolicySystems(task)
    reference = np.zeros(task.n_states, dtype=np.int64)
    systems.system(reference)
    far = np.full(task.n_states, 2, dtype=np.int64)            # every state differs
    system = systems.system(far)
    assert systems.factorisations == 2 and system.method == "lu"
    b = np.ones(task.n_states)
    assert np.allclose(system.solve(b), np.linalg.solve(dense_matrix(task, far), b),
                       rtol=0, atol=1e-10 / (1 - task.gamma))


def _howard(task, signal):
    """Policy iteration with a dense exact evaluation at every step (the reference)."""
    n, states = task.n_states, np.arange(task.n_states)
    P = task.transition_matrix.toarray().reshape(n, task.n_actions, n)
    actions = np.argmax(signal, axis=1)
    while True:
        values = np.linalg.solve(dense_matrix(task, actions), signal[states, actions])
        q = signal + task.gamma * P @ values
        best = np.argmax(q, axis=1)
        improve = q[states, best] > q[states, actions] + 1e-11 * np.abs(signal).max() / (
            1 - task.gamma)
        if not improve.any():
            return actions, values
        actions = np.where(improve, best, actions)


@pytest.mark.parametrize("few", [None, -1], ids=["default", "partial-until-stable"])
def test_modified_policy_iteration_returns_exact_optimal_values(monkeypatch, count_calls, few):
    """On a slow-mixing grid (LU route, where partial evaluations are used) the values returned
    are the exact values of the returned policy and equal the dense Howard iteration's; also
    when every step is partial until the policy stops changing (then one exact evaluation
    must follow before the answer)."""
    task = sparse_gridworld(0.25, 20, gamma=0.95)
    monkeypatch.setitem(linear._preference, linear._pattern(task), "lu")
    if few is not None:
        monkeypatch.setattr(lagrangian, "_FEW", few)
    calls = count_calls(lagrangian, "policy_backups")
    signal = task.r - 0.3 * task.costs[..., 0]
    actions, values = lagrangian.policy_iteration(task, signal)
    assert calls                                                  # partial evaluations used
    _, reference = _howard(task, signal)
    exact = np.linalg.solve(dense_matrix(task, actions),
                            signal[np.arange(task.n_states), actions])
    scale = np.abs(signal).max() / (1 - task.gamma)
    assert np.abs(values - exact).max() <= 1e-10 * scale
    assert np.abs(values - reference).max() <= 1e-9 * scale


def test_the_improved_start_is_at_least_as_good_as_both_ends():
    """Policy improvement on the state-wise maximum of two policies' values gives a policy
    whose exact values dominate both (here recomputed densely)."""
    task = random_sparse_cmdp(200, seed=8)
    cost = task.costs[..., 0]
    states = np.arange(task.n_states)
    rng = np.random.default_rng(3)
    ends = []
    for lam in (0.0, 2.0):
        actions = rng.integers(0, task.n_actions, task.n_states)
        values = np.linalg.solve(dense_matrix(task, actions),
                                 (task.r - lam * cost)[states, actions])
        ends.append(lagrangian._found(task, actions, cost, values, lam))
    multiplier = 0.7
    signal = task.r - multiplier * cost
    start, best, _ = lagrangian._improved_start(task, signal, multiplier, tuple(ends))
    mine = np.linalg.solve(dense_matrix(task, start), signal[states, start])
    for end in ends:
        theirs = np.linalg.solve(dense_matrix(task, end.actions), signal[states, end.actions])
        assert np.all(mine >= theirs - 1e-9)
        assert np.allclose(best >= theirs - 1e-9, True)


def test_gridworld_solves_equal_highs_with_a_binding_budget():
    """The Lagrangian route on 30x30 gridworlds (LU route with reuse) against HiGHS on the
    occupancy LP: the same optimum to 1e-9 relative, exactly feasible, the budget binding."""
    from safepce.tabular.families import family_spec  # noqa: F401  (registry import)

    for noise in (0.1, 0.3):
        task = sparse_gridworld(noise, 30)
        least = lagrangian.minimum_cost_policy(task)[1]
        free = tabular.evaluate(task, np.eye(4)[lagrangian.policy_iteration(task, task.r)[0]])
        task = task.with_budget((least + free.cost_value) / 2)
        ours = tabular.solve(task)
        theirs = tabular.solve(task, backend="highspy")
        assert ours.backend != "highspy"
        assert ours.reward_value == pytest.approx(theirs.reward_value, rel=1e-9)
        assert ours.cost_value <= task.budget and float(ours.multipliers) > 0


def test_a_solve_does_not_depend_on_what_the_process_solved_before(monkeypatch):
    """The same (scrambled) gridworld solved in a fresh state (no route known for its pattern, no
    kept factorisation), again at once, and after other tasks of its pattern: the same bits
    (red when a system that needs LU switches its pattern's route in the middle of a solve,
    as the first version did)."""
    def fresh():
        monkeypatch.setattr(linear, "_preference", {})
        monkeypatch.setattr(linear, "_policy_systems", [])

    def scrambled(task, seed=5):
        """The task with its states renumbered at random: no longer banded, so it takes the
        GMRES route, where some policies of a grid still need LU."""
        import scipy.sparse as sparse

        S, A = task.n_states, task.n_actions
        order = np.random.default_rng(seed).permutation(S)        # new state i = old order[i]
        inverse = np.argsort(order)
        moved = task.transition_matrix[(order[:, None] * A + np.arange(A)).reshape(-1)]
        P = sparse.csr_array((moved.data, inverse[moved.indices], moved.indptr),
                             shape=moved.shape)
        return tabular.CMDP(P, task.r[order], task.cost[order], task.budget, task.rho[order],
                            task.gamma)

    tasks = [scrambled(sparse_gridworld(noise, 16).with_budget(1.0))
             for noise in (0.3, 0.1, 0.2)]
    fresh()
    assert linear._route(tasks[0]) == "auto"
    first = tabular.solve(tasks[0])
    repeated = tabular.solve(tasks[0])                 # its kept factorisation is not reused
    for other in tasks[1:]:
        tabular.solve(other)
    again = tabular.solve(tasks[0])
    for later in (repeated, again):
        assert later.reward_value == first.reward_value
        assert later.cost_value == first.cost_value
        assert np.array_equal(later.policy, first.policy)
    assert float(first.multipliers) > 0


def test_secant_steps_shorten_the_multiplier_search_and_keep_the_optimum(monkeypatch):
    """On random tasks of 20,000 states (a dual of many small pieces) the secant steps take
    fewer multiplier steps in all than crossing steps only, and the optimum is the same (both
    end on the same certified test; the tie tolerance lets the two routes' values differ by
    ~1e-10 relative at most)."""
    tasks = [random_sparse_cmdp(20_000, seed=seed) for seed in (0, 1, 2)]
    runs = {}
    for secant in (True, False):
        monkeypatch.setattr(lagrangian, "_SECANT", secant)
        runs[secant] = [lagrangian.solve_lagrangian(task) for task in tasks]
    steps = {k: sum(s.search_steps for s in v) for k, v in runs.items()}
    assert steps[True] <= 0.8 * steps[False], steps
    for task, a, b in zip(tasks, runs[True], runs[False], strict=True):
        va, vb = (tabular.evaluate(task, s.policy) for s in (a, b))
        assert va.cost_value <= task.budget and vb.cost_value <= task.budget
        assert abs(va.reward_value - vb.reward_value) <= 1e-9 * abs(vb.reward_value)


def test_secant_steps_give_way_on_a_gridworld_dual(monkeypatch):
    """On the 200 x 200 gridworld of the scale benchmark (budget halfway between the least
    cost and the reward-optimal policy's) the dual is far from smooth and policy iteration's
    answers differ in tied actions from start to start: the search must recognise an end found
    again by its values and give up secant steps that do not halve the ends' distance from b,
    so it takes at most two steps more than crossing steps only (65 against 7 when an end was
    recognised by its actions), and ends on the same optimum."""
    task = sparse_gridworld(0.3, 200)
    least = lagrangian.minimum_cost_policy(task, False)[1]
    free = tabular.evaluate(task, np.eye(4)[lagrangian.policy_iteration(task, task.r)[0]])
    task = task.with_budget(0.5 * (least + free.cost_value))
    runs = {}
    for secant in (True, False):
        monkeypatch.setattr(lagrangian, "_SECANT", secant)
        runs[secant] = lagrangian.solve_lagrangian(task)
    assert runs[True].search_steps <= runs[False].search_steps + 2, (
        runs[True].search_steps, runs[False].search_steps)
    values = [tabular.evaluate(task, runs[k].policy) for k in (True, False)]
    assert all(v.cost_value <= task.budget for v in values)
    assert abs(values[0].reward_value - values[1].reward_value) <= 1e-9 * values[1].reward_value
