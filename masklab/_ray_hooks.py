"""Ray Tune hooks of masklab.sweep, in a module of their own: importing it imports Ray (an optional group).

Tune pickles its callbacks and stopper into the experiment state; defined here at module level they pickle
by reference, and they reach the sweep's live objects (which hold locks) through ACTIVE, on the driver only.
"""
from ray import tune

ACTIVE: dict[str, tuple] = {}      # sweep name -> (finished(i, row), should_stop() or None, row keys)


class Collect(tune.Callback):
    """Hands each trial's final row (the report with done=True) to the sweep's `finished`."""

    def __init__(self, key: str):
        self.key = key

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("done") and self.key in ACTIVE:
            finished, _, keys = ACTIVE[self.key]
            finished(trial.config["index"], {k: result.get(k) for k in keys})


class StopAll(tune.stopper.Stopper):
    """Ends the whole experiment when the sweep's should_stop() says so (the app's Stop button)."""

    def __init__(self, key: str):
        self.key = key

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        check = ACTIVE.get(self.key, (None, None, None))[1]
        return bool(check and check())
