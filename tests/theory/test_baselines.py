"""The baselines' building blocks against independent computations (exact values, LPs, finite
differences), and each baseline on the harness."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from safepce import tabular
from safepce.theory.algorithms import make_algorithm
from safepce.theory.algorithms.baselines import (
    BaselineInputError,
    Scales,
    discounted_state_visits,
    high_entropy_safe_start,
)
from safepce.theory.algorithms.dope import (
    DOPE,
    DOPE_THEORY,
    DOPEPlus,
    InfeasiblePlanError,
    bonus,
    extended_lp,
    extended_lp_model,
    widths,
)
from safepce.theory.algorithms.extended_planning import solve_extended
from safepce.theory.algorithms.lb_sgd import LBSGD, barrier_step
from safepce.theory.algorithms.safe_meta_rl import (
    SAFE_META_RL_SMOOTHED,
    SafeMetaRL,
    adaptation_step,
    advantages,
    exact_statistics,
    kl_per_state,
    linearised_cost,
    tilted_policy,
)
from safepce.theory.estimators import first_visit_q
from safepce.theory.experiment import (
    ExperimentSettings,
    experiment_training,
    run_seed,
)
from safepce.theory.gradients import exact_gradient, softmax
from safepce.theory.harness import run_test_phase


@pytest.fixture(scope="module")
def experiment():
    training, distribution = experiment_training(ExperimentSettings())
    return training, distribution, training.cover_tasks(distribution)


# --- shared pieces ---------------------------------------------------------------------------


def test_high_entropy_start_is_the_largest_safe_mixture(experiment):
    training, _, tasks = experiment
    policy, eta = high_entropy_safe_start(training.safe_policy, tasks)
    budget = tasks[0].budget
    safe_worst = max(tabular.evaluate(t, training.safe_policy).cost_value for t in tasks)
    limit = budget - 0.5 * (budget - safe_worst)
    assert 0 < eta < 1
    assert max(tabular.evaluate(t, policy).cost_value for t in tasks) <= limit
    uniform = np.full_like(policy, 0.25)
    bigger = (1 - eta - 0.01) * training.safe_policy + (eta + 0.01) * uniform
    assert max(tabular.evaluate(t, bigger).cost_value for t in tasks) > limit


def test_discounted_state_visits_match_the_exact_occupancy():
    task = tabular.gridworld(0.3)
    policy = tabular.uniform_policy(49, 4)
    batch = tabular.simulate_trajectories(task, policy, 20_000, 200, seed=3)
    exact = tabular.evaluate(task, policy).occupancy.sum(axis=1)
    estimate = discounted_state_visits(batch, 49)
    assert estimate.sum() == pytest.approx(1 - 0.9**200, abs=1e-12)
    # per-state standard error of a mean of 20,000 values in [0, 1]: at most 0.0036
    assert np.max(np.abs(estimate - exact)) < 4 * 0.5 / math.sqrt(20_000)


# --- Safe Meta-RL ---------------------------------------------------------------------------


def test_advantages_match_exact_q_minus_v_within_monte_carlo_error():
    task = tabular.gridworld(0.3)
    policy = 0.8 * tabular.solve(task).policy + 0.2 * tabular.uniform_policy(49, 4)
    scales = Scales.of([task])
    adv_r, _, _, _ = exact_statistics(task, policy, scales)
    batch = tabular.simulate_trajectories(task, policy, 4000, 300, seed=5)
    estimate = first_visit_q(batch, 49, 4, "reward")
    adv_hat = advantages(estimate.q / scales.reward_max, policy)
    well_visited = estimate.counts >= 400
    error = estimate.standard_error / scales.reward_max
    # A - A_hat mixes the pair's error with its state's baseline error: allow 5 SEs of both
    baseline_error = np.max(np.where(well_visited, error, 0), axis=1, keepdims=True)
    gap = np.abs(adv_hat - adv_r)
    assert np.all(gap[well_visited] <= 5 * (error + baseline_error)[well_visited] + 1e-8)
    assert well_visited.sum() >= 25


def test_advantages_are_zero_where_nothing_was_seen():
    q = np.array([[1.0, np.nan], [np.nan, np.nan]])
    policy = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert advantages(q, policy).tolist() == [[0.0, 0.0], [0.0, 0.0]]


@given(st.integers(0, 10_000), st.floats(0.0, 50.0))
def test_tilted_policy_maximises_the_per_state_lagrangian(seed, u):
    rng = np.random.default_rng(seed)
    policy = rng.dirichlet(np.ones(4), size=3)
    adv_r, adv_k = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    lam, lam_c, gamma = 0.2, 0.2, 0.9
    temperature = lam + (1 - gamma) * u * lam_c
    best = tilted_policy(policy, adv_r, adv_k, u, lam, lam_c, gamma)

    def objective(p):
        return np.sum(p * (adv_r - u * adv_k), axis=1) - temperature * kl_per_state(p, policy)

    for other in rng.dirichlet(np.ones(4), size=(50, 3)):
        assert np.all(objective(best) >= objective(other) - 1e-10)
    # closed form = the softmax of log pi + (A_r - u A_k) / temperature
    logits = np.log(policy) + (adv_r - u * adv_k) / temperature
    assert np.allclose(best, softmax(logits), atol=1e-12)


def test_linearised_cost_is_first_order_exact():
    task = tabular.random_cmdp(6, 3, seed=8)
    scales = Scales.of([task])
    policy = tabular.uniform_policy(6, 3)
    adv_r, adv_k, occupancy, cost = exact_statistics(task, policy, scales)
    target = tabular.random_policy(6, 3, seed=2) if hasattr(tabular, "random_policy") else (
        np.random.default_rng(2).dirichlet(np.ones(3), size=6))
    for t in (1e-3, 1e-4):
        mixed = (1 - t) * policy + t * target
        exact = tabular.evaluate(task, mixed).cost_value / scales.cost_max
        first_order = linearised_cost(mixed, policy, cost, adv_k, occupancy, 0.0, task.gamma)
        # the error of a first-order expansion is O(t^2)
        assert abs(exact - first_order) < 50 * t**2
    assert linearised_cost(policy, policy, cost, adv_k, occupancy, 0.2, task.gamma) == (
        pytest.approx(cost, abs=1e-12))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), u=st.floats(0.0, 5.0), zeros=st.booleans())
def test_compiled_dual_ascent_equals_composing_the_numpy_steps(seed, u, zeros):
    """adaptation_step (one compiled loop) against tilted_policy and linearised_cost composed
    here, step by step: the same u to 1e-12 and the same policy to 1e-13, also when the
    policy has zeros (actions outside the support stay at 0)."""
    rng = np.random.default_rng(seed)
    S, A, gamma = 6, 3, 0.9
    policy = rng.dirichlet(np.ones(A), S)
    if zeros:
        policy[0, 1] = 0.0
        policy[0] /= policy[0].sum()
    adv_r, adv_k = rng.normal(size=(S, A)), rng.normal(size=(S, A))
    occupancy = rng.dirichlet(np.ones(S))
    cost, budget, lam, lam_c, step = 1.3, 1.0, 0.2, 0.2, 0.7
    reference_u = u
    for _ in range(12):
        candidate = tilted_policy(policy, adv_r, adv_k, reference_u, lam, lam_c, gamma)
        g = linearised_cost(candidate, policy, cost, adv_k, occupancy, lam_c, gamma)
        reference_u = max(0.0, reference_u + step * (g - budget))
    candidate = tilted_policy(policy, adv_r, adv_k, reference_u, lam, lam_c, gamma)
    reference_g = linearised_cost(candidate, policy, cost, adv_k, occupancy, lam_c, gamma)
    got, got_u, got_g = adaptation_step(policy, adv_r, adv_k, occupancy, cost, budget, lam,
                                        lam_c, gamma, u, 12, step)
    assert got_u == pytest.approx(reference_u, abs=1e-12)
    assert got_g == pytest.approx(reference_g, abs=1e-12)
    np.testing.assert_allclose(got, candidate, rtol=0, atol=1e-13)
    if zeros:
        assert got[0, 1] == 0.0


def test_exact_adaptation_converges_to_the_lp_optimum(experiment):
    """With exact statistics (no Monte-Carlo noise) 800 closed-form steps from the high-entropy
    start reach the constrained optimum of tabular.solve within 0.02% and end feasible up to
    the boundary; the first steps may overshoot the budget (30 dual steps from u = 0)."""
    training, _, tasks = experiment
    task = tabular.gridworld(0.31335413)
    optimum = tabular.solve(task, backend="highspy").reward_value
    algorithm = SafeMetaRL(training, tasks, 600, preset=SAFE_META_RL_SMOOTHED)
    s = algorithm.scales
    policy, u = algorithm.start_policy, 0.0
    for _ in range(800):
        adv_r, adv_k, occupancy, cost = exact_statistics(task, policy, s)
        policy, u, _ = adaptation_step(policy, adv_r, adv_k, occupancy, cost, s.scaled_budget,
                                       0.2, 0.2, s.gamma, u, 30, 100.0)
    final = tabular.evaluate(task, policy)
    assert final.reward_value == pytest.approx(optimum, rel=2e-4)
    assert final.cost_value <= task.budget + 1e-3


@pytest.mark.slow
def test_exact_safe_meta_rl_on_the_ten_test_tasks(experiment):
    """The README's diagnosis of Safe Meta-RL: with exact statistics it reaches the optimum
    (regret < 1,000 over 800 steps of 50 episodes on every task) yet overshoots the budget by
    more than 1e-3 early on some tasks (the dual has not converged), so its violations with
    Monte-Carlo estimates are not all estimation error."""
    from safepce.theory.experiment import PAPER_TEST_TASKS

    training, _, tasks = experiment
    overshoot = []
    for noise in PAPER_TEST_TASKS:
        task = tabular.gridworld(noise)
        optimum = tabular.solve(task, backend="highspy").reward_value
        algorithm = SafeMetaRL(training, tasks, 600, preset=SAFE_META_RL_SMOOTHED)
        s = algorithm.scales
        policy, u, regret, worst = algorithm.start_policy, 0.0, 0.0, 0.0
        for _ in range(800):
            adv_r, adv_k, occupancy, cost = exact_statistics(task, policy, s)
            policy, u, _ = adaptation_step(policy, adv_r, adv_k, occupancy, cost,
                                           s.scaled_budget, 0.2, 0.2, s.gamma, u, 30, 100.0)
            exact = tabular.evaluate(task, policy)
            regret += 50 * (optimum - exact.reward_value)
            worst = max(worst, exact.cost_value)
        assert regret < 1000
        overshoot.append(worst > task.budget + 1e-3)
    assert 1 <= sum(overshoot) < len(PAPER_TEST_TASKS)


# --- LB-SGD ------------------------------------------------------------------------------


@given(st.integers(0, 10_000))
def test_barrier_step_keeps_the_exact_iterate_feasible(seed):
    """With exact gradients and M = 8/(1-gamma)^3 (scaled costs in [0, 1]) the step never
    crosses the budget (the descent-lemma certificate of LB-SGD)."""
    task = tabular.random_cmdp(5, 3, seed=seed, gamma=0.8)
    scales = Scales.of([task])
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(5, 3))
    reward, grad_r = exact_gradient(task, logits, "reward")
    cost, grad_k = exact_gradient(task, logits, "cost")
    budget = cost + rng.uniform(0.001, 0.5)           # any strictly feasible point
    slack = (budget - cost) / scales.cost_max
    step, g = barrier_step(grad_r / scales.reward_max, grad_k / scales.cost_max, slack, 0.1,
                           4.0, 8 / (1 - task.gamma)**3)
    assert step > 0
    new_cost, _ = exact_gradient(task, logits + step * g, "cost")
    assert new_cost < budget


def test_barrier_direction_is_the_exact_barrier_gradient():
    from safepce.theory.gradients import barrier_gradient

    logits = np.random.default_rng(1).normal(size=(5, 3))
    cost, grad_k = exact_gradient(tabular.random_cmdp(5, 3, seed=1), logits, "cost")
    task = tabular.random_cmdp(5, 3, seed=1).with_budget(cost + 0.7)
    _, grad_r = exact_gradient(task, logits, "reward")
    _, g = barrier_step(grad_r, grad_k, 0.7, 0.1, 4.0, 1.0)
    assert np.allclose(g, barrier_gradient(task, logits, 0.1)[1], atol=1e-12)
    assert barrier_step(grad_r, grad_k, 0.0, 0.1, 4.0, 1.0)[0] == 0.0


# --- DOPE / DOPE+ ---------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["lagrangian", "clarabel", "highs"])
@given(seed=st.integers(0, 10_000))
def test_extended_lp_with_zero_widths_is_the_occupancy_lp(solver, seed):
    task = tabular.random_cmdp(5, 3, seed=seed)
    plan = extended_lp(task.P, np.zeros_like(task.P), task.rho, task.r, task.cost,
                       task.budget, task.gamma, solver=solver)
    # Clarabel is an interior-point method: its optimum is good to its 1e-8 tolerances
    assert plan.value == pytest.approx(tabular.solve(task).reward_value, rel=1e-6, abs=1e-8)
    assert tabular.evaluate(task, plan.policy).cost_value <= task.budget * (1 + 1e-6)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), width=st.sampled_from([0.0, 0.01, 0.05, 0.2, 1.0]),
       slack=st.sampled_from([-0.3, 0.0, 0.2, 0.5, 2.0]))
def test_exact_extended_planning_equals_highs_on_the_lifted_lp(seed, width, slack):
    """safepce.theory.algorithms.extended_planning against HiGHS's simplex on the same lifted LP:
    the
    same optimal value (1e-8 relative), the same verdict on feasibility, and its solution
    x = (mu, q) satisfies every row of the LP (flow, consistency, box, budget) to 1e-9."""
    task = tabular.random_cmdp(5, 3, seed=seed, concentration=0.5)
    w = np.random.default_rng(seed).uniform(0, width, task.P.shape)
    cost = task.cost + 0.1
    budget = task.budget + slack
    args = (task.P, w, task.rho, task.r, cost, budget, task.gamma)
    try:
        reference = extended_lp(*args, solver="highs").value
    except InfeasiblePlanError:
        reference = None
    x = solve_extended(*args)
    assert (x is None) == (reference is None)
    if x is None:
        return
    model = extended_lp_model(*args)
    rows = model.matrix @ x
    assert np.all(rows >= model.row_lower - 1e-9) and np.all(rows <= model.row_upper + 1e-9)
    assert np.all(x >= -1e-12)
    assert model.objective @ x == pytest.approx(reference, rel=1e-8, abs=1e-9)


def test_extended_lp_against_scipy_on_a_joint_lp():
    """The lifted LP with widths, rebuilt densely for scipy's HiGHS: same optimum."""
    task = tabular.random_cmdp(4, 2, seed=3)
    S, A = 4, 2
    w = np.full((S, A, S), 0.05)
    cost = task.cost + 0.1
    plan = extended_lp(task.P, w, task.rho, task.r, cost, task.budget + 0.5, task.gamma,
                       solver="highs")
    assert extended_lp(task.P, w, task.rho, task.r, cost, task.budget + 0.5,
                       task.gamma).value == pytest.approx(plan.value, rel=1e-6)
    n_mu, n_q = S * A, S * A * S
    A_eq, b_eq, A_ub, b_ub = [], [], [], []
    for s_next in range(S):
        row = np.zeros(n_mu + n_q)
        row[s_next * A:(s_next + 1) * A] = 1
        for pair in range(S * A):
            row[n_mu + pair * S + s_next] -= task.gamma
        A_eq.append(row)
        b_eq.append(task.rho[s_next])
    for pair in range(S * A):
        row = np.zeros(n_mu + n_q)
        row[n_mu + pair * S:n_mu + (pair + 1) * S] = 1
        row[pair] = -1
        A_eq.append(row)
        b_eq.append(0.0)
        for s_next in range(S):
            p = task.P.reshape(S * A, S)[pair, s_next]
            up = np.zeros(n_mu + n_q)
            up[n_mu + pair * S + s_next], up[pair] = 1, -min(1, p + 0.05)
            low = np.zeros(n_mu + n_q)
            low[n_mu + pair * S + s_next], low[pair] = -1, max(0, p - 0.05)
            A_ub += [up, low]
            b_ub += [0.0, 0.0]
    A_ub.append(np.concatenate([cost.reshape(-1), np.zeros(n_q)]))
    b_ub.append(task.budget + 0.5)
    objective = -np.concatenate([task.r.reshape(-1), np.zeros(n_q)])
    reference = linprog(objective, A_ub=np.array(A_ub), b_ub=b_ub, A_eq=np.array(A_eq),
                        b_eq=b_eq, method="highs")
    assert plan.value == pytest.approx(-reference.fun, rel=1e-7)


@given(st.integers(0, 10_000))
def test_pessimistic_plan_is_safe_when_the_true_kernel_is_in_the_set(seed):
    """DOPE's safety argument: if P lies in the set, the plan's exact cost under P
    meets the budget (full bonuses). The budget sits halfway between the least achievable cost
    and the uniform policy's, so it binds; without the cost bonus the same LP's plan violates in
    114 of 200 such tasks (seeds 0-199), with it in none."""
    rng = np.random.default_rng(seed)
    task = tabular.random_cmdp(4, 2, seed=seed, gamma=0.5)
    width = 0.005
    noise = rng.uniform(-width, width, size=task.P.shape)
    noise -= noise.mean(axis=2, keepdims=True)
    kernel_hat = np.clip(task.P + noise, 0, 1)
    kernel_hat /= kernel_hat.sum(axis=2, keepdims=True)
    w = np.maximum(width, np.abs(kernel_hat - task.P))          # P in the set by construction
    least = tabular.minimum_cost(task)
    budget = least + 0.5 * (task.budget - least)
    try:
        plan = extended_lp(kernel_hat, w, task.rho, task.r + bonus(w, 1.0, task.gamma),
                           task.cost + bonus(w, float(task.cost.max()), task.gamma), budget,
                           task.gamma)
    except InfeasiblePlanError:
        return
    assert tabular.evaluate(task, plan.policy).cost_value <= budget + 1e-7


def test_widths_cover_the_true_kernel():
    """Bernstein widths at iota = ln(4 S^2 A N / delta): no entry of 2 x 4 x 49 outside them
    after 20,000 episodes of a random policy on the gridworld."""
    task = tabular.gridworld(0.3)
    batch = tabular.simulate_trajectories(task, tabular.uniform_policy(49, 4), 2000, 30, seed=1)
    counts = np.zeros((49, 4, 49))
    np.add.at(counts, (batch.states[:, :-1], batch.actions[:, :-1], batch.states[:, 1:]), 1)
    n = counts.sum(axis=2)
    kernel_hat = counts / np.maximum(n, 1)[..., None]
    iota = math.log(4 * 49**2 * 4 * 2000 * 30 / 0.05)
    for form in ("dope", "dope-plus"):
        w = widths(n, kernel_hat, iota, form)
        assert np.all(np.abs(kernel_hat - task.P)[n > 1] <= w[n > 1])
    assert np.all(widths(np.zeros((2, 2)), np.zeros((2, 2, 2)), 5.0, "dope") == 1.0)
    with pytest.raises(BaselineInputError, match="form"):
        widths(n, kernel_hat, iota, "ucrl")
    with pytest.raises(BaselineInputError, match="solver"):
        extended_lp(task.P, w, task.rho, task.r, task.cost, 1.5, 0.9, solver="gurobi")


@pytest.mark.slow
def test_paper_experiment_width_scale_is_the_calibrated_one(experiment):
    """The preset's constant is what calibrate_bonus_scale finds: after 14,000 episodes of pi_s
    DOPE+'s pessimistic problem is feasible on every cover task at 2^-11 and not at 2^-10."""
    from safepce.theory.algorithms.dope import PAPER_EXPERIMENT_BONUS_SCALE, calibrate_bonus_scale

    training, _, tasks = experiment
    assert calibrate_bonus_scale(training, tasks, 600) == PAPER_EXPERIMENT_BONUS_SCALE == 2**-11


# --- on the harness --------------------------------------------------------------------------


def test_dope_theory_preset_plays_pi_s_throughout(experiment):
    """With worst-case bonuses the gridworld's pessimistic problem stays infeasible: every
    deployed policy is pi_s, so the exact regret is pi_s's gap times K."""
    training, distribution, tasks = experiment
    task = tabular.gridworld(0.3)
    record = run_test_phase(DOPEPlus(training, tasks, 600, preset=DOPE_THEORY, warmup_check=500),
                            task, 2000, 600, seed=1)
    gap = (tabular.solve(task, backend="highspy").reward_value
           - tabular.evaluate(task, training.safe_policy).reward_value)
    assert record.cumulative_regret[-1] == pytest.approx(2000 * gap, rel=1e-12)
    assert record.log["plans_tried"] == 4 and not any(
        e["event"] == "plan" for e in record.log["events"])


@pytest.mark.parametrize("key", ["safe-meta-rl", "lb-sgd", "dope", "dope-plus"])
def test_baselines_run_on_the_harness_from_the_safe_start(experiment, key):
    training, distribution, _ = experiment
    algorithm = make_algorithm(key, training, distribution, 600, 0.05)
    task = tabular.gridworld(0.31335413)
    record = run_test_phase(algorithm, task, 3000, 600, seed=run_seed(0, 6))
    start = (algorithm.start_policy if hasattr(algorithm, "start_policy")
             else training.safe_policy)
    first = tabular.evaluate(task, start)
    # episode 1 deploys the start policy; the harness's values are its exact values
    assert record.reward_value[0] == pytest.approx(first.reward_value, rel=1e-12)
    assert record.cost_value[0] == pytest.approx(first.cost_value, rel=1e-12)
    assert record.preset == "paper-experiment"


def test_baselines_refuse_bad_settings(experiment):
    training, _, tasks = experiment
    for make in (lambda: SafeMetaRL(training, tasks, 600, lam=0),
                 lambda: SafeMetaRL(training, tasks, 600, batch=1),
                 lambda: LBSGD(training, tasks, 600, step=-1),
                 lambda: LBSGD(training, tasks, 600, preset=DOPE_THEORY),
                 lambda: DOPE(training, tasks, 600, delta=1.5),
                 lambda: DOPE(training, tasks, 600, warmup=-1)):
        with pytest.raises(BaselineInputError):
            make()


# --- the authors' presets (paper-experiment) against the certified / smoothed variants -------


def test_authors_lb_sgd_starts_from_the_soft_optimum_of_the_safe_task(experiment):
    """The paper-experiment LB-SGD starts from solve_soft(noise 0.4, temperature 8), recomputed
    here; the certified variant from the smoothed pi_s."""
    training, distribution, _ = experiment
    authors = make_algorithm("lb-sgd", training, distribution, 600)
    expected = tabular.solve_soft(tabular.gridworld(0.4), 8.0).policy
    np.testing.assert_allclose(authors.start_policy, expected, atol=1e-12)
    certified = make_algorithm("lb-sgd-certified", training, distribution, 600)
    assert certified.start_eta == pytest.approx(0.04)
    assert (authors.cost_unit, certified.cost_unit) == (1.0, 10.0)


def test_authors_lb_sgd_step_is_uncertified_with_a_slack_floor(experiment):
    """One update of the paper-experiment preset moves the logits by exactly
    4 (grad V_r - 0.1 grad V_c / max(b - mean cost, 0.05)) in raw units, computed here from the
    same batch; with the budget made tight the floor 0.05 is what divides."""
    from safepce.theory.gradients import reinforce_gradient

    training, distribution, _ = experiment
    task = tabular.gridworld(0.33)
    for budget_shift in (0.0, -1.45):       # the second makes b - mean cost < 0.05
        algorithm = make_algorithm("lb-sgd", training, distribution, 600)
        algorithm.budget += budget_shift
        algorithm.reset(4000, 0)
        start = algorithm.logits.copy()
        batch = tabular.simulate_trajectories(
            task, tabular.Mixture.of([algorithm.policy], [1.0]), 500, 600, seed=1)
        rewards, costs = batch.discounted_returns()
        assert algorithm.observe(rewards, costs, trajectories=batch) == 500
        slack = max(1.5 + budget_shift - costs.mean(), 0.05)
        expected = start + 4.0 * (reinforce_gradient(batch, start, "reward")[0]
                                  - 0.1 * reinforce_gradient(batch, start, "cost")[0] / slack)
        expected -= expected.max(axis=1, keepdims=True)
        np.testing.assert_allclose(algorithm.logits, expected, atol=1e-9)
        assert algorithm.deployment().episodes == 3000          # 500 once, then 3,000


def test_authors_safe_meta_rl_never_leaves_the_support_of_pi_s(experiment):
    """From pi_s itself, exponential tilting keeps every zero of pi_s at zero, so every deployed
    policy randomises only where pi_s does; the smoothed start moves everywhere."""
    training, distribution, _ = experiment
    task = tabular.gridworld(0.33)
    algorithm = make_algorithm("safe-meta-rl", training, distribution, 600)
    run_test_phase(algorithm, task, 1000, 600, seed=4)
    support = training.safe_policy > 0
    assert algorithm.updates == 20
    assert np.all(algorithm.policy[~support] == 0)
    assert not np.allclose(algorithm.policy, training.safe_policy)      # it does adapt
    smoothed = make_algorithm("safe-meta-rl-smoothed", training, distribution, 600)
    run_test_phase(smoothed, task, 1000, 600, seed=4)
    assert np.all(smoothed.policy > 0)


def test_authors_safe_meta_rl_resets_the_dual(experiment, monkeypatch):
    """Every adaptation of the paper-experiment preset starts its 30 dual steps from u = 0; the
    smoothed variant starts from the previous adaptation's u."""
    import safepce.theory.algorithms.safe_meta_rl as module
    training, distribution, _ = experiment
    task = tabular.gridworld(0.33)
    for key, reset in (("safe-meta-rl", True), ("safe-meta-rl-smoothed", False)):
        starts, previous = [], []

        def spy(*args, starts=starts, previous=previous, real=module.adaptation_step):
            starts.append(args[9])
            result = real(*args)
            previous.append(result[1])
            return result

        monkeypatch.setattr(module, "adaptation_step", spy)
        run_test_phase(make_algorithm(key, training, distribution, 600), task, 500, 600, seed=2)
        monkeypatch.undo()
        assert len(starts) == 10
        if reset:
            assert starts == [0.0] * 10
        else:
            assert starts[1:] == previous[:-1] and max(previous) > 0
