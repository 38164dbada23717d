"""Shared fixtures: a tiny config that trains in a fraction of a second, and seeded torch."""
import os

import pytest
import torch
from hypothesis import settings

from masklab.config import Config

# Hypothesis: 100 examples per property normally; `--hypothesis-profile=mutation` (docs/MUTATION.md) runs 20, so
# a mutation pass, which reruns the tests once per mutant, stays in the time of a lunch break.
settings.register_profile("mutation", max_examples=20)

# pytest-xdist runs the suite in one process per core (`-n auto`): each gets its share of the cores, not all of them
# (torch's default), so the workers' threads do not fight over the same cores.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    from masklab.device import usable_cpus
    torch.set_num_threads(max(1, usable_cpus() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the suite's Ray sweeps (each would otherwise start and stop its own: seconds);
    skips where Ray is not installed."""
    from masklab.sweep import ray_available, start_ray
    if not ray_available():                   # not importorskip: start_ray imports Ray on the loopback address
        pytest.skip("Ray is an optional group: pip install -r requirements-sweep.txt")
    ray, started = start_ray()
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture
def tiny() -> Config:
    """A config small enough for unit tests: a 32x32 canvas, 8 images a step, a few steps."""
    return Config(canvas=32, clutter=2, batch_size=8, steps=6, log_every=2, test_size=40, width=4,
                  classifier_width=4, device="cpu")
