"""Test-wide settings: deterministic Hypothesis profiles, smaller sizes without the JIT."""

import os

from hypothesis import HealthCheck, settings

from colibri_mm.kernels.jit import JIT_DISABLED

settings.register_profile(
    "default",
    derandomize=True,
    deadline=None,
    max_examples=25 if JIT_DISABLED else 150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
