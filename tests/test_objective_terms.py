"""Every term of the objective, checked against its formula on hand-made tensors: the l1 / l0 mask losses, the
constraint's multiplier term, total variation and the bimodality term; and the cosine lr decay, as a
schedule and as what the optimiser really steps with."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from masklab.config import Config
from masklab.constraint import AreaConstraint
from masklab.gates import STRETCH, hard_concrete_open_prob
from masklab.losses import MASK_LOSSES, objective, total_variation
from masklab.train import lr_factor


def _out(gate="hard_concrete", temperature=2 / 3):
    """A model output with known values: 2 images of 2x2 mask pixels, 3 classes."""
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]], [[[1.0, 1.0], [0.0, 0.0]]]])      # TV: 1 + 1 per image
    relaxed = torch.tensor([[[[0.9, 0.2], [0.5, 1.0]]], [[[0.75, 1.0], [0.0, 0.1]]]])
    logits_m = torch.tensor([[[[2.0, -1.0], [0.0, 3.0]]], [[[1.0, 4.0], [-2.0, -0.5]]]])
    return SimpleNamespace(logits=torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]]), mask=mask, relaxed=relaxed,
                           mask_logits=logits_m, features=torch.tensor([[-1.0, 2.0], [3.0, -4.0]]),
                           area=torch.tensor(0.6), temperature=temperature, gate=gate)


Y = torch.tensor([0, 1])


def test_l1_mask_loss_is_the_mean_of_the_mask():
    out = _out()
    assert MASK_LOSSES["l1"](out, Config(mask_loss="l1"), 0.5).item() == pytest.approx(0.5)       # 4 of 8 open


def test_l0_mask_loss_is_the_expected_open_fraction_of_the_gate():
    """Hard concrete: the closed-form P(z > 0) = sigmoid(l - tau * log(-gamma / zeta)); any other gate:
    P(logit > 0) = sigmoid(l). Both differ from the mean of the mask."""
    out = _out(temperature=0.5)
    lo, hi = STRETCH
    hc = MASK_LOSSES["l0"](out, Config(gate="hard_concrete", mask_loss="l0"), 0.5)
    expected = torch.sigmoid(out.mask_logits - 0.5 * math.log(-lo / hi)).mean()
    assert hc.item() == pytest.approx(expected.item(), rel=1e-6)
    assert hc.item() == pytest.approx(hard_concrete_open_prob(out.mask_logits, 0.5).mean().item(), rel=1e-6)
    st = MASK_LOSSES["l0"](out, Config(gate="straight_through", mask_loss="l0"), 0.5)
    assert st.item() == pytest.approx(torch.sigmoid(out.mask_logits).mean().item(), rel=1e-6)
    assert hc.item() > st.item() + 0.05                            # tau * log(11) shifts every logit up


def test_pooled_l1_and_mse_zero_are_what_their_names_say():
    out = _out()
    assert MASK_LOSSES["pooled_l1"](out, Config(), 0.5).item() == pytest.approx(2.5)      # mean |features|
    assert MASK_LOSSES["mse_zero"](out, Config(), 0.5).item() == pytest.approx(0.5)       # mean m^2 of 0/1
    assert MASK_LOSSES["none"](out, Config(), 0.5).item() == 0.0


def test_total_variation_is_the_mean_absolute_neighbour_difference():
    """Vertical plus horizontal mean |difference|: a checkerboard has 1 + 1, a constant mask 0, one edge 0.5."""
    checker = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert total_variation(checker).item() == pytest.approx(2.0)
    assert total_variation(torch.ones(1, 1, 5, 5)).item() == 0.0
    half = torch.zeros(1, 1, 4, 4)
    half[..., :, :2] = 1                                           # one vertical edge: horizontal diffs only
    assert total_variation(half).item() == pytest.approx(1 / 3)    # 4 of the 12 horizontal pairs differ
    assert total_variation(half.transpose(-1, -2)).item() == pytest.approx(1 / 3)


def _constraint_at(mu: float, target: float) -> tuple[AreaConstraint, int]:
    """A constraint whose multiplier is `mu` and whose target is `target` at the returned step."""
    c = AreaConstraint(target=target, steps=10, warmup=0.0, anneal_frac=0.0, floor=0.0)
    c.load_state_dict({"mu": torch.tensor(mu), "nu": torch.tensor(0.0)})
    return c, 1


@pytest.mark.parametrize("constraint, tv, bimodal", [(True, 0.0, 0.0), (False, 0.3, 0.0), (False, 0.0, 2.0),
                                                     (True, 0.3, 2.0)])
def test_objective_adds_each_term_with_its_weight(constraint, tv, bimodal):
    """loss = CE + beta * L_mask + multiplier * (area - target) [the constraint's penalty] + tv * TV(m) + bimodal *
    mean(r (1 - r)), each term present exactly when its switch is on."""
    out = _out()
    cfg = Config(mask_loss="l1", beta=0.25, constraint=constraint, tv=tv, bimodal=bimodal)
    c, step = _constraint_at(1.5, 0.2)
    penalty = c(out.area, step) if constraint else torch.zeros(())
    loss, ce, mask_loss = objective(cfg, out, Y, 0.2, penalty)
    expected_ce = F.cross_entropy(out.logits, Y)
    r = out.relaxed
    expected = (expected_ce + 0.25 * out.mask.mean()
                + (1.5 * (0.6 - 0.2) if constraint else 0.0)
                + tv * total_variation(out.mask)
                + bimodal * (r * (1 - r)).mean())
    assert ce.item() == pytest.approx(expected_ce.item(), rel=1e-6)
    assert mask_loss.item() == pytest.approx(0.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_entropy_term_is_the_mean_bernoulli_entropy_of_the_gates_open_probability():
    """entropy * mean(-p log p - (1 - p) log(1 - p)), p = sigmoid(l): log 2 at l = 0, finite and 0 at a saturated
    logit; it is added only with the constraint's terms (not for the unmasked model or in the closing phase)."""
    out = _out()
    p = torch.sigmoid(out.mask_logits)
    h = -(p * p.log() + (1 - p) * (1 - p).log()).mean()
    base, _, _ = objective(Config(bimodal=0.0), out, Y, 0.2, torch.zeros(()))
    loss, _, _ = objective(Config(bimodal=0.0, entropy=0.7), out, Y, 0.2, torch.zeros(()))
    assert (loss - base).item() == pytest.approx(0.7 * h.item(), rel=1e-5)
    assert objective(Config(entropy=0.7), out, Y, 0.2, None)[0].item() == pytest.approx(F.cross_entropy(out.logits, Y).item())
    from masklab.losses import gate_entropy
    assert gate_entropy(torch.zeros(3)).item() == pytest.approx(math.log(2))
    assert gate_entropy(torch.tensor([80.0, -80.0])).item() == pytest.approx(0.0, abs=1e-12)


def test_the_entropy_term_splits_a_band_of_equal_logits_which_the_bimodality_term_cannot_see():
    """A 'noise mask': every logit in a band near -2.9, each pixel open by chance (p = sigmoid(l), about 5%), m_eval
    exactly 0. The bimodality term on m_eval has no gradient there. The entropy term's descent moves each logit by
    l * p(1 - p) (down), the area floor's multiplier nu by nu * p(1 - p) (up): logits above -nu rise, those below
    it fall, so the band spreads into chosen and not chosen instead of sitting at the target in expectation."""
    from masklab.gates import GATES
    from masklab.losses import gate_entropy
    l = torch.tensor([-3.2, -3.0, -2.8, -2.6], requires_grad=True)
    relaxed = GATES["hard_concrete"](l, 2 / 3, False, False)
    assert relaxed.tolist() == [0.0] * 4
    (g_bim,) = torch.autograd.grad((relaxed * (1 - relaxed)).mean(), l)
    assert g_bim.abs().sum() == 0
    nu = 2.9
    (g,) = torch.autograd.grad(gate_entropy(l) - nu * torch.sigmoid(l).mean(), l)
    step = -g                                                       # gradient descent
    assert step[0] < 0 < step[-1]                                   # the lowest down, the highest up
    assert (l + 100 * step).std() > l.std()


def test_the_unmasked_model_gets_no_mask_terms():
    """penalty None (no mask): only CE + beta * L_mask, whatever constraint, tv and bimodal say."""
    out = _out()
    cfg = Config(mask_loss="none", constraint=True, tv=1.0, bimodal=1.0)
    loss, ce, _ = objective(cfg, out, Y, 0.1, None)
    assert loss.item() == pytest.approx(ce.item(), rel=1e-7)


def test_the_constraint_term_pushes_the_area_down_only_when_the_multiplier_is_positive():
    """d loss / d area = multiplier: the dual variable is the price of area."""
    out = _out()
    out.area = torch.tensor(0.6, requires_grad=True)
    c, step = _constraint_at(2.5, 0.2)
    loss, *_ = objective(Config(), out, Y, 0.2, c(out.area, step))
    loss.backward()
    assert out.area.grad.item() == pytest.approx(2.5)


def test_lr_decay_is_a_cosine_from_one_to_five_percent():
    off, on = Config(steps=100), Config(steps=100, lr_decay=True)
    assert [lr_factor(off, i) for i in (0, 50, 100)] == [1.0, 1.0, 1.0]
    assert lr_factor(on, 0) == pytest.approx(1.0)
    assert lr_factor(on, 50) == pytest.approx(0.05 + 0.95 * 0.5)
    assert lr_factor(on, 25) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(on, 100) == pytest.approx(0.05) == lr_factor(on, 150)
    values = [lr_factor(on, i) for i in range(101)]
    assert all(a > b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("decay", [False, True])
def test_training_steps_with_the_decayed_learning_rate(tiny, monkeypatch, decay):
    """The optimiser's lr at each step is cfg.lr * lr_factor(cfg, step - 1): the schedule is really applied; the
    branch's own optimiser in the closing phase (commit, the last 2 of 8 steps here) steps at the lr the run had as
    that phase began, held there."""
    from masklab.data import open_data
    from masklab.models import build_model
    from masklab.train import train
    seen = []

    class Spy(torch.optim.Adam):
        def step(self, *a, **k):
            seen.append((id(self), self.param_groups[0]["lr"]))
            return super().step(*a, **k)

    monkeypatch.setattr(torch.optim, "Adam", Spy)
    cfg = tiny.replace(steps=8, log_every=8, lr=0.01, lr_decay=decay, finetune=0.25)
    data = open_data(cfg)
    list(train(cfg, build_model(cfg, data.channels, data.classes), data))
    main = [lr for who, lr in seen if who == seen[0][0]]
    branch = [lr for who, lr in seen if who != seen[0][0]]
    assert main == pytest.approx([0.01 * lr_factor(cfg, i) for i in range(8)])
    assert branch == pytest.approx([main[-2]] * 2)
    assert (main[-1] < 0.006) == decay


def test_damping_adds_a_quadratic_pull_to_the_target_that_acts_both_ways_and_does_not_accumulate():
    """damping c: penalty = (mu - nu)(a - t) + c/2 (a - t)^2, so d penalty / d area = (mu - nu) + c (a - t): with
    the multipliers at 0 the area is pulled down when above the target and up when below it, at once, and the
    multipliers' update is the same as without it. 10 in the default Config (since 2026-12-01); an AreaConstraint
    made without it has none."""
    assert Config().damping == 10 and AreaConstraint(0.2, 10).damping == 0
    for area_value, expected_grad in ((0.6, 4.0), (0.1, -1.0)):
        c = AreaConstraint(target=0.2, steps=10, warmup=0.0, anneal_frac=0.0, floor=0.0, damping=10.0)
        area = torch.tensor(area_value, requires_grad=True)
        penalty = c(area, 1)
        assert penalty.item() == pytest.approx(5.0 * (area_value - 0.2) ** 2)
        penalty.backward()
        assert area.grad.item() == pytest.approx(expected_grad)
        c.update()
        plain = AreaConstraint(target=0.2, steps=10, warmup=0.0, anneal_frac=0.0, floor=0.0)
        plain(torch.tensor(area_value), 1)
        plain.update()
        assert c.multiplier.item() == pytest.approx(plain.multiplier.item())
    assert AreaConstraint.from_config(Config(damping=3.0)).damping == 3.0
    with pytest.raises(ValueError, match="damping >= 0"):
        AreaConstraint(0.2, 10, damping=-1.0)
