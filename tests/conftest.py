"""Shared test settings: hypothesis profiles. The default (CI) profile is derandomized, so every
run checks the same examples; `HYPOTHESIS_PROFILE=thorough` draws 300 fresh ones per property."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=30, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
