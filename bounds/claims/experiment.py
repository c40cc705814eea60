"""Claims about the paper's experiment (Section 6) and the erratum's findings measured again."""

from __future__ import annotations

import math

from safepce.theory.algorithms.registry import make_algorithm
from safepce.theory.experiment import (
    ExperimentSettings,
    experiment_training,
    run_seed,
    test_parameters,
)
from safepce.theory.harness import run_test_phase
from safepce.theory.results import write_table

from .record import Claim
from .runner import VerifyContext


def claim_published_safety(context: VerifyContext) -> list[Claim]:
    """The paper's experiment: Safe-PCE with the authors' constants on the published tasks, with
    the gridworld family's defaults (K, H, its ten test tasks: Section 6)."""
    settings = ExperimentSettings()
    training, distribution = experiment_training(settings)
    horizon = settings.resolved_horizon()
    tasks = test_parameters(settings)
    violating = 0
    worst = math.inf
    for i, theta in enumerate(tasks):
        algorithm = make_algorithm("safe-pce", training, distribution, horizon, settings.delta)
        record = run_test_phase(algorithm, distribution.build(theta), settings.episodes, horizon,
                                seed=run_seed(settings.seed, i))
        violating += bool(record.violated.any())
        worst = min(worst, record.budget - float(record.cost_value.max()))
    return [Claim(
        "Section 6: Safe-PCE [paper-experiment] never violates on the ten published tasks",
        violating == 0, len(tasks), worst,
        f"{violating}/{len(tasks)} runs violate (cost units, K = {settings.episodes}, H = "
        f"{horizon}); the tuned constants' per-stage cost width "
        "sqrt(300/n) + 0.01 >= 0.25 exceeds the slack/4 that App. D's induction needs",
        kind="paper-statement")]


def claim_erratum(context: VerifyContext) -> list[Claim]:
    """The erratum (bounds.erratum): every finding measured again; writes findings.csv. A
    finding that no longer holds fails its claim (the erratum must then be corrected)."""
    from ..erratum import measure_findings

    rows = measure_findings(quick=context.quick)
    write_table(context.out / "findings.csv", rows)
    return [Claim(f"erratum: {row['name']} ({row['where']}): {row['statement']}", row["holds"],
                  1, math.nan, row["measured"]) for row in rows if row["test"]]
