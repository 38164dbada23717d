"""Small real training runs: the failure of the seed loss is reproduced, and the default method learns."""
import pytest

from masklab.config import preset
from masklab.runs import fit

pytestmark = pytest.mark.slow


def test_seed_loss_collapses_to_an_all_zero_mask(tmp_path):
    """The seed's hard sigmoid + concave log loss (alpha 0.9, lambda 1e-3, beta 0.1) goes all-zero within
    60 steps on the default data: the failure the question asks about, reproduced rather than hidden."""
    cfg = preset("seed", steps=60, log_every=20, batch_size=32, test_size=200)
    _, summary = fit(cfg, out=tmp_path / "seed")
    m = summary["metrics"]
    assert m["collapsed"] and m["area"] < 0.005, m
    assert m["accuracy_hard"] < 0.2, m                      # nothing left to classify: chance level


def test_default_method_beats_chance_with_area_moving_to_its_target(tmp_path):
    """Hard concrete + annealed target-area constraint on a small cluttered canvas: accuracy far above
    chance (10%), a binary mask, and an area that fell from ~1.0 toward its target."""
    cfg = preset("hard-concrete", canvas=32, clutter=2, steps=240, batch_size=32, log_every=40,
                 test_size=300, area_target=0.1, anneal_frac=0.5, dual_lr=0.1)
    _, summary = fit(cfg, out=tmp_path / "hc")
    m = summary["metrics"]
    assert m["accuracy_hard"] > 0.6, m
    assert m["area"] < 0.3 and not m["collapsed"], m
    assert m["bimodality"] > 0.9, m
    assert m["precision_in_box"] > 2 * (16 * 16) / (32 * 32), m   # kept pixels prefer the digit's box
