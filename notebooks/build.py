"""Writes the notebooks from the cells below (run: python notebooks/build.py).

The notebooks are stored without outputs; tests/test_notebooks.py executes them at small sizes.
Each notebook asserts the numbers it shows against an independent computation.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

QUICKSTART = [
    new_markdown_cell("# Quick start: define a CMDP, solve it exactly, simulate it\n\n"
                      "Tasks are stored in cost form (reward, non-negative cost, budget). "
                      "`task.utility_form` gives the paper's normalised utility form."),
    new_code_cell("import numpy as np\nfrom safepce import tabular\n\n"
                  "S, A = 3, 2\n"
                  "P = np.zeros((S, A, S))\n"
                  "P[:, 0] = [0.8, 0.2, 0.0]   # action 0 drifts to state 0 (rewarding)\n"
                  "P[:, 1] = [0.1, 0.3, 0.6]   # action 1 drifts to state 2 (cheap)\n"
                  "r = np.array([[1.0, 0.5], [0.2, 0.1], [0.0, 0.0]])\n"
                  "cost = np.array([[1.0, 0.6], [0.5, 0.2], [0.0, 0.0]])\n"
                  "task = tabular.CMDP(P, r, cost, budget=3.0, rho=np.ones(S) / S, gamma=0.9)\n"
                  "task.utility_form.utility[..., 0]"),
    new_code_cell("solution = tabular.solve(task)       # occupancy LP (HiGHS: small dense task)\n"
                  "print(solution.reward_value, solution.cost_value, solution.multipliers)\n"
                  "solution.policy"),
    new_markdown_cell("The LP optimum is attained by the returned policy (exact evaluation) and "
                      "no deterministic feasible policy beats it:"),
    new_code_cell("import itertools\n"
                  "exact = tabular.evaluate(task, solution.policy)\n"
                  "assert abs(exact.reward_value - solution.lp_value) < 1e-8\n"
                  "values = [tabular.evaluate(task, tabular.deterministic_policy(a, A))\n"
                  "          for a in itertools.product(range(A), repeat=S)]\n"
                  "best = max(v.reward_value for v in values if v.slack >= 0)\n"
                  "assert best <= solution.reward_value + 1e-9\n"
                  "best, solution.reward_value"),
    new_code_cell("runs = tabular.simulate(task, solution.policy, n_episodes=200_000, horizon=300,"
                  " seed=0)\n"
                  "mean = runs.reward_return.mean()\n"
                  "se = runs.reward_return.std() / np.sqrt(runs.reward_return.size)\n"
                  "assert abs(mean - exact.reward_value) < 4 * se\n"
                  "mean, exact.reward_value, se"),
]

EXPERIMENT = [
    new_markdown_cell("# The paper's gridworld experiment (small size)\n\n"
                      "Training phase (Algorithm 1) with the experiment's settings, then the six "
                      "test-time algorithms (Safe-PCE and PCE with the authors' tuned constants, "
                      "and the baselines Safe Meta-RL, DOPE+, DOPE, LB-SGD) on a few of the "
                      "published test tasks. At 5,000 episodes DOPE and DOPE+ are still in their "
                      "14,000-episode warm-up on pi_s. `safepce reproduce` runs the full size."),
    new_code_cell("%matplotlib inline\n"
                  "EPISODES, TASKS = 5000, 3\n"
                  "from safepce.theory.experiment import ExperimentSettings, reproduce, summarise\n"
                  "from safepce.theory.figures import plot_figure2\n"
                  "settings = ExperimentSettings(episodes=EPISODES, tasks=TASKS)\n"
                  "training, distribution, records, rows = reproduce(settings, progress=False)\n"
                  "training.cover_parameters[:, 0].round(4)"),
    new_code_cell("import numpy as np\nfrom safepce import tabular\n"
                  "for key, runs in records.items():\n"
                  "    print(key, summarise(key, runs)['final_regret_mean'], "
                  "summarise(key, runs)['violations'])\n"
                  "# the harness's exact values: every episode of PCE deploys a cover policy\n"
                  "pce = records['pce'][0]\n"
                  "task = tabular.gridworld(0.33994760)\n"
                  "values = {round(tabular.evaluate(task, p).cost_value, 9) for p in "
                  "training.policies}\n"
                  "assert set(np.round(np.unique(pce.cost_value), 9)) <= values"),
    new_code_cell("# every plotting function returns a matplotlib Figure (shown inline here; "
                  "safepce.theory.figures.save_figure writes PNG + PDF)\n"
                  "plot_figure2(records, 1.5)"),
]

THEOREMS = [
    new_markdown_cell("# Theorem checks with bound plots\n\n"
                      "The hard family of App. G, its explicit Bretagnolle-Huber lower bound, and "
                      "Theorem 4.2's explicit regret bound on Safe-PCE [theory] runs. "
                      "`safepce verify` runs every check."),
    new_code_cell("from safepce.bounds.hard_instance import hard_family, check_hard_family, "
                  "sample_lower_bound\n"
                  "family = hard_family(m=2, gamma=0.9, xi=0.1, eps=0.1)\n"
                  "check = check_hard_family(family)\n"
                  "assert check['distinct'] > 0 and check['covering'] > 0\n"
                  "{k: v for k, v in check.items() if k != 'optimal_values'}"),
    new_code_cell("import numpy as np\nfrom safepce.bounds.sample_complexity import fitted_slope\n"
                  "eps = np.geomspace(0.01, 0.1, 5)\n"
                  "bound = [sample_lower_bound(hard_family(2, 0.9, 0.1, e), 0.05) for e in eps]\n"
                  "slope = fitted_slope(1 / eps, bound)\n"
                  "assert abs(slope - 2) < 0.3\n"
                  "slope"),
    new_code_cell("from safepce.tabular.distributions import runnable_family\n"
                  "from safepce.theory.training import train\n"
                  "from safepce.theory.oracles import DistanceCoverage, WorstCaseSafePolicy\n"
                  "from safepce.theory.algorithms.safe_pce import (THEORY, SafePCE,\n"
                  "                                               mixture_weights)\n"
                  "from safepce.theory.harness import run_test_phase\n"
                  "from safepce.bounds.upper import theorem_4_2_terms\n"
                  "family = runnable_family(0)\n"
                  "training = train(family, DistanceCoverage(0.01), 0.1, "
                  "safe_oracle=WorstCaseSafePolicy(xi=0.5), progress=False)\n"
                  "units = family.build([0.5]).utility_form\n"
                  "K = 20_000\n"
                  "algorithm = SafePCE(training, units, 40, preset=THEORY, eps=0.01, "
                  "delta=0.1)\n"
                  "record = run_test_phase(algorithm, family.build([0.4]), K, 40, seed=0)\n"
                  "tried = record.log['candidate_order']\n"
                  "v_s = algorithm.v_s[tried]\n"
                  "alpha_1 = [mixture_weights(v, 0.01, 6.0, 0.5, 1)[1] for v in v_s]\n"
                  "bound = theorem_4_2_terms(K, 0.1, 0.01, 0.5, training.safe_margin.min(), "
                  "len(tried), v_s, alpha_1)\n"
                  "regret = record.cumulative_regret[-1] / units.reward_scale\n"
                  "assert regret <= bound.total and not record.violated.any()\n"
                  "regret, bound"),
    new_code_cell("import matplotlib.pyplot as plt\n"
                  "fig, ax = plt.subplots(figsize=(6, 3.5))\n"
                  "ax.plot(record.cumulative_regret / units.reward_scale,\n"
                  "        label='Safe-PCE [theory]')\n"
                  "grid = np.linspace(500, K, 40)\n"
                  "ax.plot(grid, [theorem_4_2_terms(int(k), 0.1, 0.01, 0.5, "
                  "training.safe_margin.min(), len(tried), v_s, alpha_1).total for k in grid], "
                  "'--', label='Theorem 4.2 (App. E)')\n"
                  "ax.set_yscale('log'); ax.set_xlabel('episode'); ax.legend();"),
]


def main():
    for name, cells in (("01_quickstart", QUICKSTART), ("02_paper_experiment", EXPERIMENT),
                        ("03_theorem_checks", THEOREMS)):
        notebook = new_notebook(cells=cells, metadata={"kernelspec": {
            "name": "python3", "display_name": "Python 3", "language": "python"}})
        for index, cell in enumerate(notebook.cells):
            cell.id = f"{name[:2]}-{index:02d}"      # stable ids: rebuilding changes no line
        nbformat.write(notebook, HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()
