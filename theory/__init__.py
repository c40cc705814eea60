"""Algorithms whose guarantees we check: training phase, Safe-PCE, PCE, baselines, harness, CLI."""
