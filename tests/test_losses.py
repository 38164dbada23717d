import pytest
import torch

from masklab.config import Config, ConfigError
from masklab.losses import area_target, seed_loss, sorted_area_loss, temperature_at, total_variation


def test_seed_loss_has_its_minima_at_zero_and_one():
    """The reconstructed seed loss is concave with wells at 0 and 1; alpha > 0.5 makes 0 the deeper one."""
    m = torch.linspace(0, 1, 101)
    loss = seed_loss(m, alpha=0.9, lam=1e-3)
    assert loss.argmin() == 0 and loss[0] < loss[-1]
    assert loss[0] < loss[1] and loss[-1] < loss[-2]         # both ends are local minima
    second = loss[:-2] - 2 * loss[1:-1] + loss[2:]
    assert torch.all(second < 0)                              # concave: no minimum inside (0, 1)


def test_seed_loss_slope_at_zero_is_about_alpha_over_lambda():
    """Its gradient at m = 0 is ~alpha / lam: huge, which drives the hard sigmoid into its dead zone."""
    m = torch.zeros(1, requires_grad=True)
    seed_loss(m, alpha=0.9, lam=1e-3).sum().backward()
    assert m.grad.item() == pytest.approx(0.9 / 1e-3 - 0.1 / (1 + 1e-3), rel=1e-4)


def test_mse_to_zero_shrinks_in_proportion_to_the_value():
    """MSE(m, 0) has gradient 2m/N: it shrinks everything uniformly, with no pull towards 0/1."""
    m = torch.tensor([0.2, 0.5, 0.9], requires_grad=True)
    torch.nn.functional.mse_loss(m, torch.zeros(3)).backward()
    assert torch.allclose(m.grad, 2 * m.detach() / 3)


def test_sorted_area_loss_is_zero_exactly_at_the_target_area():
    """A binary mask with exactly round(target * pixels) ones has zero sorted-area loss; others do not."""
    mask = torch.zeros(2, 1, 10, 10)
    mask[:, :, :2, :5] = 1                                   # 10 of 100 pixels
    assert sorted_area_loss(mask, 0.10).item() == 0.0
    assert sorted_area_loss(mask, 0.20).item() == pytest.approx(0.10)
    assert sorted_area_loss(torch.full_like(mask, 0.5), 0.10).item() == pytest.approx(0.25)


def test_total_variation_favours_contiguous_masks():
    """One block has less total variation than the same number of scattered pixels."""
    block = torch.zeros(1, 1, 8, 8)
    block[..., 2:4, 2:4] = 1
    scattered = torch.zeros(1, 1, 8, 8)
    scattered[..., ::4, ::4] = 1
    assert total_variation(block) < total_variation(scattered)


def test_area_target_anneals_from_one_to_the_goal():
    """The target starts at 1.0, falls linearly over anneal_frac of the steps, then stays at area_target."""
    cfg = Config(steps=100, warmup=0.0, anneal_frac=0.5, area_target=0.1)
    assert area_target(cfg, 0) == 1.0
    assert area_target(cfg, 25) == pytest.approx(0.55)
    assert area_target(cfg, 50) == pytest.approx(0.1)
    assert area_target(cfg, 100) == pytest.approx(0.1)
    assert area_target(Config(steps=10, warmup=0.0, anneal_frac=0.0, area_target=0.2), 1) == pytest.approx(0.2)


def test_warmup_holds_the_target_at_one_then_the_anneal_starts():
    """Through the warm-up the target is 1.0 (no pressure on the gates); the anneal begins where it ends."""
    cfg = Config(steps=100, warmup=0.2, anneal_frac=0.5, area_target=0.1)
    assert area_target(cfg, 20) == 1.0
    assert area_target(cfg, 45) == pytest.approx(0.55)
    assert area_target(cfg, 70) == pytest.approx(0.1) == area_target(cfg, 100)


def test_temperature_anneals_geometrically_between_its_ends():
    """Temperature goes from temperature (step 1) to temperature_end (last step)."""
    cfg = Config(steps=11, temperature=1.0, temperature_end=0.25)
    assert temperature_at(cfg, 1) == pytest.approx(1.0)
    assert temperature_at(cfg, 6) == pytest.approx(0.5)
    assert temperature_at(cfg, 11) == pytest.approx(0.25)


def test_geometric_anneal_halves_the_target_in_equal_steps():
    """Geometric: area_target ** progress, so the sparse end of the schedule gets as many steps per halving as the
    start; it meets the linear schedule at both ends."""
    cfg = Config(steps=100, warmup=0.0, anneal_frac=0.8, area_target=1 / 16, anneal="geometric")
    assert area_target(cfg, 0) == 1.0
    assert [area_target(cfg, s) for s in (20, 40, 60)] == pytest.approx([0.5, 0.25, 0.125])
    assert area_target(cfg, 80) == pytest.approx(1 / 16) == area_target(cfg, 100)
    linear = cfg.replace(anneal="linear")
    assert area_target(cfg, 40) < area_target(linear, 40)          # sparser sooner, at the same end point


def test_unknown_anneal_shape_is_refused():
    with pytest.raises(ConfigError, match="anneal"):
        Config(anneal="cosine")
