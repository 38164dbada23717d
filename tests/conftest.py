"""Shared fixtures: a tiny config that trains in a fraction of a second, and seeded torch."""
import os

import pytest
import torch
from hypothesis import settings

from masklab.config import Config

# Hypothesis: 100 examples per property normally; `--hypothesis-profile=mutation` (docs/MUTATION.md) runs 20, so
# a mutation pass, which reruns the tests once per mutant, stays in the time of a lunch break.
# The default profile is derandomized: the examples are a function of the test, so a run is repeatable and CI never
# fails on a draw no one can replay. `--hypothesis-profile=explore` draws fresh random examples, many more, to hunt:
# run it after changing a gate or the config (a bfloat16 NaN in top-k was found that way; test_gates pins it).
settings.register_profile("mutation", max_examples=20, derandomize=True)
settings.register_profile("seeded", derandomize=True)
settings.register_profile("explore", max_examples=1000, derandomize=False)
settings.load_profile("seeded")

# pytest-xdist runs the suite in one process per core (`-n auto`): each gets its share of the cores, not all of them
# (torch's default), so the workers' threads do not fight over the same cores.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    from masklab.device import usable_cpus
    torch.set_num_threads(max(1, usable_cpus() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


@pytest.hookimpl(optionalhook=True)                    # a hook of pytest-xdist's: unused where it is not installed
def pytest_xdist_make_scheduler(config, log):
    """`-n` spreads the tests with xdist's "load" scheduler (unless --dist names another); make "load" "loadgroup",
    which is "load" but for the tests marked xdist_group(NAME): each group runs in one worker, so a session fixture that
    only they use (the quick benchmark's run, a Ray instance) is made once, not once per worker. (Not --dist in
    pyproject's addopts: that flag is an error wherever xdist is absent, as on a bare GPU machine.)"""
    if config.getoption("dist") == "load":
        from xdist.scheduler import LoadGroupScheduling
        return LoadGroupScheduling(config, log)
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """The scheduler above groups tests by the "@NAME" a worker appends to the ids of its xdist_group tests, which a
    worker does only when its own command line says --dist loadgroup; ours says -n auto. Tell the workers here
    (pytest_configure, below, reads it), or each group would be spread like any other tests and its session fixture
    made on every worker that gets one of them (seen: the quick benchmark trained twice, 75 s each)."""
    if node.config.getoption("dist") == "load":
        node.workerinput["masklab_loadgroup"] = True


def pytest_configure(config):
    if getattr(config, "workerinput", {}).get("masklab_loadgroup"):
        config.option.loadgroup = True


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


# one thread: the same run (and EVAL-X reading, 0.23 with two threads against 0.42 with one) on any machine
QUICK_BENCH = ["bench", "--quick", "--seeds", "1", "--methods", "hard-concrete", "--threads", "1"]


@pytest.fixture(scope="session")
def quick_bench(tmp_path_factory):
    """`bench --quick` of the default, one seed, trained once for the tests that read it (the benchmark's own
    outputs, and a learning test: its run is a small real training). 220 steps instead of --quick's 300, for the
    suite's time. A test that uses it is marked xdist_group("quick-bench"), so that one worker of
    `pytest -n auto` trains it (pytest_xdist_make_scheduler, above), not every worker that gets such a test."""
    from masklab import bench
    from masklab.cli import main
    out = tmp_path_factory.mktemp("quick-bench")
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(bench, "QUICK", {**bench.QUICK, "steps": 220})
            assert main([*QUICK_BENCH, "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)                # the CLI's --threads is the process's: the worker's again
    return out


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the suite's Ray sweeps (each would otherwise start and stop its own: 10 s);
    skips where Ray is not installed. A test that uses it is marked xdist_group("ray"): one worker starts it."""
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
