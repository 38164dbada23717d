"""The benchmark's step_cost_ratio with the clock replaced: it is the method's time over the unmasked model's
(same canvas, clutter, batch and seed), timed in alternating rounds after a warm-up round, median over rounds.
The only other check, unmasked against itself (test_bench.py), passes with the ratio upside down."""
import pytest

from masklab import bench
from masklab.config import preset


def test_step_cost_ratio_is_the_median_of_method_over_baseline_after_a_warm_up(monkeypatch):
    calls = []
    method_s = iter([100.0, 3.0, 9.0, 3.3])               # round 0 (warm-up) is far off: it must not count
    base_s = iter([1.0, 1.0, 1.0, 1.1])

    def fake_seconds(cfg, data, device):
        calls.append(cfg)
        return next(base_s) if cfg.gate == "none" else next(method_s)

    monkeypatch.setattr(bench, "train_seconds", fake_seconds)
    cfg = preset("hard-concrete", canvas=32, clutter=2, batch_size=8, seed=3, width=4, classifier_width=4,
                 device="cpu")
    assert bench.step_cost_ratio(cfg, steps=3, rounds=3) == pytest.approx(3.0)     # median of 3, 9, 3
    assert [c.gate for c in calls] == ["hard_concrete", "none"] * 4                  # alternating rounds
    assert calls[0] == cfg.replace(steps=3)
    assert calls[1] == preset("unmasked", canvas=32, clutter=2, batch_size=8, seed=3, steps=3)


def test_a_method_twice_as_slow_has_a_ratio_of_two(monkeypatch):
    monkeypatch.setattr(bench, "train_seconds", lambda cfg, data, device: 1.0 if cfg.gate == "none" else 2.0)
    assert bench.step_cost_ratio(preset("ste", canvas=32, batch_size=8, device="cpu"), steps=2, rounds=3) == 2.0
