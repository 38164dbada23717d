"""The method options screened on 2026-11-30 (bench/RESULTS.md, "changes in kind"): random block masks for part of
each batch (REAL-X's evaluator training), the noise-free hard mask for part of it, a learned location prior, the
glimpse (the branch reads the classifier's features), and two teachers for the mask logits (the classifier's class
activation map; the drop in log p(y) when a block is hidden); and, screened later, the shadow classifier, the logit
gain (noise_end, gain_site), the entropy, the complement term (p(y) on the pixels the mask drops), commit
(the closing phase teaches the branch its own mask with exact 0s and 1s) with its margin, and the distractors
(another image's part pasted in, its gates pushed closed) and refine (a second look through the classifier's
features of the first mask). Each does what
its Config help says, and is off by default but the three the default adopted (noise_end, damping, commit)."""
import math

import pytest
import torch
import torch.nn.functional as F

from masklab.config import GAIN_SITE_NAMES, Config, preset
from masklab.models import build_model


def _model(**over):
    torch.manual_seed(0)
    model = build_model(Config(**over), 1, 10)
    torch.nn.init.normal_(model.classifier.head.weight, std=0.1)   # off its near-zero start: real gradients
    return model


def test_the_options_are_off_by_default_but_the_four_the_default_adopted():
    """Every screened option is off by default but noise_end, damping and commit, on since 2026-12-01 (with the gain
    inside the bound), and average, on since 2026-12-03; the presets of earlier defaults turn them off, the
    references keep the default's averaging."""
    cfg = Config()
    options = (cfg.random_masks, cfg.deterministic, cfg.prior, cfg.glimpse, cfg.evidence, cfg.occlusion, cfg.ahead,
               cfg.shadow, cfg.branch_depth, cfg.entropy, cfg.complement, cfg.commit, cfg.commit_margin, cfg.commit_lr, cfg.distract,
               cfg.refine, cfg.commit_pieces, cfg.average)
    assert options == (0, 0, 0, False, 0, 0, 0, False, 3, 0, 0, True, 0, 1, 0, False, 0, 0.2)
    assert (cfg.noise_end, cfg.damping, cfg.gain_site) == (0.25, 10.0, "logits")
    model = build_model(cfg, 1, 10)
    assert model.glimpse is None and model.refine is None and model.attention.prior is None
    assert model.logit_gain == 4.0
    assert model.attention.gain_inside
    for name in ("hard-concrete-nov29", "hard-concrete-plain", "hard-concrete-bilinear", "top-k", "ste"):
        old = preset(name)
        assert (old.noise_end, old.damping, old.commit, old.average) == (1.0, 0.0, False, 0.0), name
        assert build_model(old, 1, 10).logit_gain == 1.0
    assert preset("hard-concrete-nov29") == preset("hard-concrete", noise_end=1.0, damping=0.0, gain_site="bounded",
                                                   commit=False, average=0.0)
    assert preset("hard-concrete-dec01") == preset("hard-concrete", commit=False, average=0.0)
    assert preset("hard-concrete-dec01pm") == preset("hard-concrete", average=0.0)
    assert all(preset(name).average == cfg.average for name in ("unmasked", "oracle-ink", "oracle-box"))


def test_random_rows_see_block_masks_and_send_no_gradient_to_the_branch():
    model = _model(mask_stride=2)
    x, g = torch.rand(8, 1, 24, 24), torch.Generator().manual_seed(0)
    out = model(x, 2 / 3, g, random_rows=8, random_low=0.3)
    m = out.mask
    assert ((m == 0) | (m == 1)).all()
    assert torch.equal(m, m[..., ::2, ::2].repeat_interleave(2, 2).repeat_interleave(2, 3))   # 2 x 2 blocks
    assert 0 < m.mean() < 1
    F.cross_entropy(out.logits, torch.arange(8)).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.attention.parameters())
    assert model.classifier.body[0].weight.grad.abs().sum() > 0


def test_random_rows_keep_at_least_the_low_end_on_average():
    """p ~ U(low, 1) per image: with low = 0.9 about 95% of the blocks are kept, with low = 0 about half."""
    model = _model()
    x = torch.rand(64, 1, 32, 32)
    high = model(x, 2 / 3, torch.Generator().manual_seed(1), random_rows=64, random_low=0.9).mask.mean()
    half = model(x, 2 / 3, torch.Generator().manual_seed(1), random_rows=64, random_low=0.0).mask.mean()
    assert 0.92 < high < 0.98 and 0.4 < half < 0.6


def test_deterministic_rows_see_the_eval_mask_and_count_it_as_their_area():
    model = _model()
    with torch.no_grad():
        model.attention.body[-1].bias.fill_(0.0)                        # gates near 1/2: noise would matter
    x, g = torch.rand(6, 1, 24, 24), torch.Generator().manual_seed(0)
    out = model(x, 2 / 3, g, deterministic_rows=4)
    hard = (out.relaxed > 0.5).float()
    assert torch.equal(out.mask[2:], hard[2:])                          # the last 4: noise-free
    assert not torch.equal(out.mask[:2], hard[:2])                      # the first 2: noisy samples
    expected = (torch.sigmoid(out.mask_logits[:2]).mean() * 2 + hard[2:].mean() * 4) / 6
    assert torch.allclose(out.area, expected)
    out.logits.sum().backward()
    assert model.attention.body[-1].weight.grad.abs().sum() > 0          # straight-through: the branch learns
    everything = model(x, 2 / 3, g, deterministic_rows=6)
    assert torch.allclose(everything.area, (everything.relaxed > 0.5).float().mean())


def test_ahead_rows_see_the_top_of_their_logits_at_the_final_area_without_gradient_or_counting_in_the_area():
    """The first ahead_rows keep exactly their top ahead_area of pixels by logit (whatever the gate's own mask),
    send no gradient to the branch, and are left out of the area the constraint counts; the random row follows."""
    model = _model(mask_stride=1)
    x, g = torch.rand(6, 1, 20, 20), torch.Generator().manual_seed(0)
    out = model(x, 2 / 3, g, ahead_rows=2, ahead_area=0.1, random_rows=1, random_low=0.5)
    logits = out.mask_logits.detach()
    for i in range(2):
        kept = out.mask[i, 0].bool()
        assert kept.sum() == 40 and logits[i, 0][kept].min() > logits[i, 0][~kept].max()
    assert torch.allclose(out.area, model.mask_gate.area(out.mask_logits[2:], out.mask[2:], 2 / 3))
    assert ((out.mask[2] == 0) | (out.mask[2] == 1)).all() and 0 < out.mask[2].mean() < 1    # the random row
    model.zero_grad()
    F.cross_entropy(out.logits[:2], torch.arange(2)).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.attention.parameters())
    assert model.classifier.body[0].weight.grad.abs().sum() > 0


def test_train_splits_each_batch_as_configured():
    """train() gives round(fraction * batch) rows to each option; the closing phase uses neither."""
    from masklab.data import open_data
    from masklab.train import train
    seen = []
    cfg = Config(steps=4, log_every=1, batch_size=8, random_masks=0.25, deterministic=0.5, finetune=0.25,
                 test_size=16)
    data = open_data(cfg)
    model = build_model(cfg, data.channels, data.classes)
    original = model.forward

    def spy(*args, **kwargs):
        seen.append((kwargs.get("random_rows", 0), kwargs.get("deterministic_rows", 0), kwargs.get("random_low"),
                     kwargs.get("ahead_rows", 0), kwargs.get("ahead_area")))
        return original(*args, **kwargs)

    model.forward = spy
    list(train(cfg, model, data))
    assert [s[:2] for s in seen] == [(2, 4), (2, 4), (2, 4), (0, 0)]
    seen.clear()
    list(train(cfg.replace(ahead=0.5), model, data))                   # ahead first; the others share the rest
    assert [s[:2] + s[3:4] for s in seen[:3]] == [(2, 2, 4)] * 3 and seen[0][4] == cfg.area_target
    from masklab.constraint import AreaConstraint
    assert seen[0][2] == AreaConstraint.from_config(cfg).target(1) < 1      # p ~ U(target of the step, 1)


@pytest.mark.parametrize("size", [(24, 24), (37, 19)])
def test_the_prior_starts_at_zero_and_learns_at_any_image_size(size):
    plain, with_prior = _model(), _model(prior=8)
    assert with_prior.attention.prior.shape == (1, 1, 8, 8)
    x = torch.rand(2, 1, *size)
    assert torch.allclose(plain.mask_logits(x), with_prior.mask_logits(x))
    with torch.no_grad():
        with_prior.attention.prior[..., :4] = 1.0                       # the left half preferred
    shifted = with_prior.mask_logits(x) - plain.mask_logits(x)
    assert shifted[..., : size[1] // 4].min() > 0.5 and shifted[..., -(size[1] // 4):].abs().max() < 0.5
    with_prior.mask_logits(x).sum().backward()
    assert with_prior.attention.prior.grad.abs().sum() > 0


def test_the_glimpse_starts_silent_and_never_trains_the_classifier_through_the_mask():
    plain, glimpse = _model(), _model(glimpse=True)
    x = torch.rand(3, 1, 24, 24)
    assert torch.allclose(plain.mask_logits(x), glimpse.mask_logits(x))
    with torch.no_grad():
        glimpse.glimpse.weight.normal_()
    assert not torch.allclose(plain.mask_logits(x), glimpse.mask_logits(x))
    glimpse.mask_logits(x).sum().backward()
    assert glimpse.glimpse.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in glimpse.classifier.parameters())


@pytest.mark.parametrize("over", [dict(mask_stride=2), dict(mask_stride=1, width=8),
                                  dict(mask_stride=2, mask_upsample="shuffle")])
def test_refine_starts_silent_leaves_every_other_weight_and_never_trains_the_classifier(over):
    plain, refine = _model(**over), _model(refine=True, **over)
    assert all(torch.equal(v, refine.state_dict()[k]) for k, v in plain.state_dict().items())
    x = torch.rand(3, 1, 24, 22)
    assert torch.equal(plain.mask_logits(x), refine.mask_logits(x))
    with torch.no_grad():
        refine.refine.head[-1].weight.normal_()
    assert not torch.allclose(plain.mask_logits(x), refine.mask_logits(x))
    refine.mask_logits(x).sum().backward()
    assert all(p.grad.abs().sum() > 0 for p in refine.refine.parameters())
    assert all(p.grad is None for p in refine.classifier.parameters())
    assert {id(p) for p in refine.refine.parameters()} <= {id(p) for p in refine.branch_parameters()}


def test_refine_shows_the_classifier_the_image_through_the_first_hard_mask():
    """The second look reads x * 1[m_eval(first logits) > 1/2]: what the classifier is trained on, not the whole image."""
    model = _model(refine=True, init_bias=0.0)
    x, seen = torch.rand(2, 1, 24, 24), []
    with torch.no_grad():
        model.refine.head[-1].weight.normal_()
        first = model.attention(x)                                    # the branch's logits without the second look
    model.classifier.register_forward_hook(lambda module, inputs, out: seen.append(inputs[0]))
    model.mask_logits(x)
    mask = model.mask_gate.hard_mask(first)
    assert 0 < mask.mean() < 1 and len(seen) == 1
    assert torch.equal(seen[0], x * mask)


def test_an_exported_mask_module_keeps_the_second_look():
    from masklab.export import MaskOnly
    model = _model(refine=True).eval()
    with torch.no_grad():
        model.refine.head[-1].weight.normal_()
    x = torch.rand(3, 1, 24, 24)
    hard, m_eval = torch.jit.trace(MaskOnly(model, 2 / 3), x)(x)
    assert torch.allclose(m_eval, model.gate_relaxed(x, 2 / 3), atol=1e-6)
    assert torch.equal(hard, (m_eval > 0.5).float())


def test_an_exported_mask_module_keeps_the_prior_and_the_glimpse():
    from masklab.export import MaskOnly
    model = _model(glimpse=True, prior=4).eval()
    with torch.no_grad():
        model.glimpse.weight.normal_()
        model.attention.prior.normal_()
    x = torch.rand(3, 1, 24, 24)
    hard, m_eval = torch.jit.trace(MaskOnly(model, 2 / 3), x)(torch.rand(5, 1, 24, 24).mul_(0).add_(x[:1]))
    assert torch.allclose(m_eval, model.gate_relaxed(x[:1], 2 / 3).expand(5, -1, -1, -1), atol=1e-6)
    assert torch.equal(hard, (m_eval > 0.5).float())


def test_the_evidence_map_is_the_class_activation_map_of_the_true_class():
    from masklab.losses import evidence_map
    model = _model(classifier_width=4)
    x, y = torch.rand(3, 1, 16, 16), torch.tensor([0, 3, 7])
    cam = evidence_map(model, x, y)
    features = model.classifier.body(x)                               # (3, 8, 4, 4)
    for i in range(3):
        by_hand = (features[i] * model.classifier.head.weight[y[i]][:, None, None]).sum(0)
        assert torch.allclose(cam[i, 0, ::4, ::4], by_hand, atol=1e-5)
        assert torch.allclose(cam[i, 0], by_hand.repeat_interleave(4, 0).repeat_interleave(4, 1), atol=1e-5)
    assert not cam.requires_grad


def test_the_evidence_term_pulls_the_mask_toward_the_top_of_the_map_and_never_trains_the_classifier():
    from masklab.losses import evidence_loss, evidence_map
    model = _model(classifier_width=4)
    x, y = torch.rand(2, 1, 16, 16), torch.tensor([1, 2])
    cam = evidence_map(model, x, y)
    logits = torch.zeros(2, 1, 16, 16, requires_grad=True)
    evidence_loss(model, x, y, logits, 0.25).backward()
    pushed_open = logits.grad < 0                                        # descent raises these logits
    assert pushed_open.flatten(1).sum(1).tolist() == [64, 64]           # a quarter of 256 (4 x 4 blocks of the map)
    for i in range(2):
        assert cam[i][pushed_open[i]].min() >= cam[i][~pushed_open[i]].max()
    assert all(p.grad is None for p in model.classifier.parameters())


def test_the_complement_term_is_the_chance_of_the_true_class_in_what_the_mask_drops_and_trains_only_the_mask():
    from masklab.losses import complement_loss
    model = _model(classifier_width=4)
    torch.nn.init.normal_(model.classifier.head.weight, std=3.0)       # far from uniform: which pixels count shows
    x, y = torch.rand(4, 1, 16, 16), torch.tensor([0, 3, 7, 9])
    mask = (torch.rand(4, 1, 16, 16) > 0.5).float().requires_grad_()
    loss = complement_loss(model, x, y, mask)
    with torch.no_grad():
        p = torch.softmax(model.classifier(x * (1 - mask))[0], 1)[torch.arange(4), y]
        kept = torch.softmax(model.classifier(x * mask)[0], 1)[torch.arange(4), y]
    assert loss.item() == pytest.approx(-torch.log(1 - p).mean().item(), rel=1e-5)
    assert loss.item() != pytest.approx(-torch.log(1 - kept).mean().item(), rel=1e-2)   # the dropped pixels, not kept
    loss.backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.classifier.parameters())
    # finite where p(y) rounds to 1 in float32: a class the classifier is sure of, on a mask that keeps nothing
    with torch.no_grad():
        model.classifier.head.bias[3] = 200.0
    sure = complement_loss(model, x, torch.full((4,), 3), torch.zeros(4, 1, 16, 16))
    assert torch.isfinite(sure) and sure.item() > 50
    # a mask that keeps everything leaves nothing out: the classifier sees zeros, whatever the image
    everything = complement_loss(model, x, y, torch.ones(4, 1, 16, 16))
    assert everything.item() == pytest.approx(complement_loss(model, x * 0, y, torch.zeros(4, 1, 16, 16)).item())


@pytest.mark.parametrize("term", ["evidence", "occlusion"])
def test_training_with_a_teacher_term_changes_the_loss(term):
    from masklab.data import open_data
    from masklab.train import train
    losses = []
    for weight in (0.0, 1.0):
        cfg = Config(steps=1, log_every=1, batch_size=8, test_size=16, **{term: weight})
        data = open_data(cfg)
        losses.append(next(train(cfg, build_model(cfg, data.channels, data.classes), data)).loss)
    assert losses[1] > losses[0] + 0.1                                  # BCE of logits near +2 against 0/1 targets


def test_the_complement_term_leaves_a_batch_norm_classifier_s_statistics_alone():
    from masklab.losses import complement_loss
    torch.manual_seed(0)
    model = build_model(Config(backbone="resnet18"), 3, 10).train()
    before = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    mask = torch.zeros(2, 1, 32, 32, requires_grad=True)
    complement_loss(model, torch.rand(2, 3, 32, 32), torch.tensor([1, 2]), mask).backward()
    assert mask.grad.abs().sum() > 0
    assert all(torch.equal(before[k], v) for k, v in model.classifier.state_dict().items())


def test_training_with_the_complement_term_adds_its_value_at_the_first_step():
    """At step 1 the classifier's head is near zero, so p(y) is about 1/10 on any input: the term adds
    -log(1 - 1/10) to the loss, and the same step without it has the same other terms."""
    from masklab.data import open_data
    from masklab.train import train
    losses = []
    for weight in (0.0, 1.0):
        cfg = Config(steps=1, log_every=1, batch_size=8, test_size=16, complement=weight)
        data = open_data(cfg)
        losses.append(next(train(cfg, build_model(cfg, data.channels, data.classes), data)).loss)
    assert losses[1] - losses[0] == pytest.approx(-math.log(0.9), abs=0.005)


def test_the_objective_panel_shows_the_options_only_when_on():
    from masklab.explain import objective_latex
    plain = "\n".join(objective_latex(Config(noise_end=1.0, damping=0.0, commit=False)))
    assert "CAM" not in plain and "rand" not in plain and "occlusion" not in plain and "shadow" not in plain
    assert "complement" not in plain and "|m_" not in plain and "distract" not in plain
    on = objective_latex(Config(evidence=0.3, occlusion=0.3, random_masks=0.25, deterministic=0.5, ahead=0.25,
                                shadow=True, entropy=0.5, noise_end=0.25, damping=10.0, complement=1.0, commit=True,
                                distract=1.0))
    assert r"\text{distract}\cdot \overline{\mathrm{softplus}(l)}_{\text{pasted}}" in on[0]
    assert any(r"\overline{|m_{\text{eval}} - h|}" in line and "mask frozen" in line for line in on)
    assert r" - \text{complement}\cdot \log\big(1 - p(y \mid x \odot (1 - m))\big)" in on[0]
    assert r"\tfrac{10}{2}\,(\bar a - t)^2" in on[0] and "^2" not in plain
    assert r"\text{entropy}\cdot" in on[0] and r"\text{entropy}" not in plain
    assert any("noise" in line and "0.25" in line for line in on) and "noise_end" not in plain
    assert any(line.startswith(r"\text{shadow: }") and r"f \leftarrow f'" in line for line in on)
    averaged = objective_latex(Config(average=0.2))
    assert any(r"\text{weight averaging: }" in line and "0.8" in line for line in averaged)
    assert not any("averaging" in line for line in objective_latex(Config(average=0.0)))
    assert r"\text{evidence}\cdot \mathrm{BCE}" in on[0] and r"\text{occlusion}\cdot \mathrm{BCE}" in on[0]
    assert any("0.25 sees" in line and "0.5 sees" in line for line in on)
    assert any("0.25 sees" in line and "top }0.045" in line for line in on) and "top }" not in plain


def test_the_results_report_has_the_changes_in_kind_and_the_fixed_mask_references(tmp_path):
    import json
    from masklab.bench_report import ablation_section
    run = {"status": "done", "area": 0.3, "bimodality": 0.5, "precision_in_box": None, "ink_recall": None,
           "collapsed": False, "accuracy_full": 0.3}
    (tmp_path / "method.jsonl").write_text(json.dumps({"name": "ft", "seed": 0, **run, "accuracy_hard": 0.9}) + "\n")
    (tmp_path / "kind.jsonl").write_text("".join(json.dumps({"name": "tk_cifar_pr_t3", "seed": s, **run,
                                                             "accuracy_hard": a}) + "\n"
                                                 for s, a in enumerate((0.42, 0.44))))
    (tmp_path / "fixed-masks.jsonl").write_text("".join(json.dumps({"kind": k, "seed": s, "area": 0.316,
                                                                    "accuracy_hard": a}) + "\n"
                                                        for k, s, a in [("center", 0, 0.44), ("center", 1, 0.46)]))
    text = "\n".join(ablation_section(tmp_path / "method.jsonl"))
    assert "changes in kind" in text and "| tk_cifar_pr_t3 | 2 | 0 | 0.430 ± 0.014 |" in text
    assert "| center | 2 | 0.316 | 0.450 ± 0.014 |" in text
    (tmp_path / "kind.jsonl").unlink()
    assert "changes in kind" not in "\n".join(ablation_section(tmp_path / "method.jsonl"))


def test_the_occlusion_map_is_the_drop_in_log_p_y_when_each_block_is_hidden():
    from masklab.losses import occlusion_map
    model = _model(classifier_width=4)
    x, y = torch.rand(2, 1, 8, 12), torch.tensor([3, 5])
    score = occlusion_map(model, x, y, grid=2)
    log_p = lambda images: torch.log_softmax(model.classifier(images)[0], 1)[torch.arange(2), y]
    with torch.no_grad():
        full = log_p(x)
        for r, c in [(0, 0), (0, 1), (1, 0), (1, 1)]:
            hidden = x.clone()
            hidden[..., 4 * r:4 * r + 4, 6 * c:6 * c + 6] = 0
            drop = full - log_p(hidden)
            block = score[:, 0, 4 * r:4 * r + 4, 6 * c:6 * c + 6]
            assert torch.allclose(block, drop[:, None, None].expand_as(block), atol=1e-5)
    assert not score.requires_grad


def test_the_occlusion_term_pulls_the_mask_toward_the_costliest_blocks_and_leaves_the_classifier_alone():
    from masklab.losses import occlusion_map, teacher_loss
    model = _model()
    x, y = torch.rand(4, 1, 24, 24), torch.arange(4)
    logits = torch.zeros(4, 1, 24, 24, requires_grad=True)
    score = occlusion_map(model, x, y)
    teacher_loss(score, logits, 0.25).backward()
    pushed_open = logits.grad < 0
    assert pushed_open.flatten(1).sum(1).tolist() == [144] * 4              # 4 of the 16 blocks of 6 x 6 pixels
    for i in range(4):
        assert score[i][pushed_open[i]].min() >= score[i][~pushed_open[i]].max()
    assert all(p.grad is None for p in model.classifier.parameters())


@pytest.mark.parametrize("kind", ["hard_concrete", "binary_concrete", "straight_through", "top_k"])
def test_a_gates_deterministic_mask_is_its_eval_mask_in_any_mode_with_a_gradient(kind):
    from masklab.gates import MaskGate
    gate = MaskGate(kind)
    gate.keep = 0.3
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    m = gate.train().deterministic(logits)
    assert torch.equal(m, gate.eval()(logits))
    m.sum().backward()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("depth, reach", [(1, 1), (3, 7), (4, 15)])
def test_each_conv_of_the_branch_doubles_how_far_a_pixels_logit_sees(depth, reach):
    """Dilations 1, 2, 4, 8, ...: at stride 1 a logit reads the pixels within 1 + 2 + ... + 2^(depth-1) of it."""
    model = _model(mask_stride=1, mask_norm=False, branch_depth=depth)   # group norm would pool the whole image
    x = torch.rand(1, 1, 41, 41)
    poked = x.clone()
    poked[..., 20, 20] += 1.0
    with torch.no_grad():
        moved = (model.mask_logits(poked) - model.mask_logits(x)).abs()[0, 0] > 0
    rows, cols = moved.nonzero(as_tuple=True)
    assert (rows - 20).abs().max() == reach and (cols - 20).abs().max() == reach
    assert moved[20 - reach:21 + reach, 20 - reach:21 + reach].float().mean() > 0.5   # a ReLU may stop a few


def test_the_shadow_classifier_reads_the_eval_mask_never_moves_the_branch_and_replaces_the_joint_one_at_the_end():
    from masklab.data import open_data
    from masklab.train import train
    cfg = Config(steps=6, log_every=3, batch_size=8, test_size=16, finetune=0.34)   # steps 5-6 are the closing phase
    data = open_data(cfg)
    runs = {}
    for shadow in (False, True):
        model = build_model(cfg, data.channels, data.classes)
        seen, fed = [], []
        original = model.forward

        def spy(x, *args, **kwargs):
            out = original(x, *args, **kwargs)
            seen.append(x * (out.relaxed.detach() > 0.5))
            return out

        model.forward = spy
        model.classifier.register_forward_pre_hook(
            lambda module, args: fed.append(args[0].detach().clone()) if module is not model.classifier else None)
        stream = train(cfg.replace(shadow=shadow), model, data)
        next(stream)                                                    # step 3: the joint classifier still
        runs[shadow, 3] = {k: v.clone() for k, v in model.state_dict().items()}
        list(stream)
        runs[shadow, 6] = {k: v.clone() for k, v in model.state_dict().items()}
        if shadow:
            assert len(fed) == cfg.steps                                # one shadow step per training step
            assert all(torch.equal(a, b) for a, b in zip(fed, seen))   # on x * 1[m_eval > 1/2] of that batch
        else:
            assert not fed
    for step in (3, 6):
        plain, shadowed = runs[False, step], runs[True, step]
        assert all(torch.equal(plain[k], shadowed[k]) for k in plain if k.startswith("attention."))
    assert all(torch.equal(runs[False, 3][k], runs[True, 3][k]) for k in runs[False, 3])
    assert not torch.equal(runs[False, 6]["classifier.head.weight"], runs[True, 6]["classifier.head.weight"])


def test_the_logit_gain_rises_over_the_anneal_only_to_one_over_noise_end():
    """noise_end 0.25: the gain is 1 through the warm-up, 4 ** progress over the anneal (the area target's own
    progress), 4 after it; a built model evaluates with the final gain."""
    from masklab.losses import logit_gain_at
    cfg = Config(steps=100, warmup=0.1, anneal_frac=0.5, noise_end=0.25)
    gains = [logit_gain_at(cfg, step) for step in (1, 10, 35, 60, 61, 100)]
    assert gains[:2] == [1.0, 1.0] and gains[2] == pytest.approx(2.0) and gains[3:] == [4.0, 4.0, 4.0]
    assert all(logit_gain_at(Config(steps=100, noise_end=1.0), step) == 1.0 for step in (1, 50, 100))
    assert build_model(cfg, 1, 10).logit_gain == 4.0


def test_the_gain_acts_inside_the_logit_bound_unless_gain_site_says_bounded(tmp_path):
    """gain_site logits (the default): the gate reads bound * tanh(gain * l0 / bound), so no logit passes the bound
    at any gain; bounded (the first version): gain * bound * tanh(l0 / bound), the bound lifted by the gain. The
    same sign either way (the eval mask), and a run saved before the field existed reads back as bounded."""
    x = torch.rand(4, 1, 48, 48)
    logits = {}
    for site in GAIN_SITE_NAMES:
        torch.manual_seed(0)
        model = build_model(Config(noise_end=0.25, gain_site=site, init_bias=-1.0), 1, 10).eval()
        assert model.attention.gain_inside is (site == "logits") and model.logit_gain == 4.0
        with torch.no_grad():
            model.logit_gain = 1.0
            torch.nn.init.normal_(model.attention.body[-1].weight, std=2.0)    # raw logits past the bound
            bounded = model.mask_logits(x)
            raw = 8.0 * torch.atanh((bounded / 8.0).clamp(-1 + 1e-6, 1 - 1e-6))
            model.logit_gain = 4.0
            logits[site] = model.mask_logits(x)
        assert 7 < bounded.abs().max() < 8                                # near the bound at gain 1
        expected = 8.0 * torch.tanh(4.0 * raw / 8.0) if site == "logits" else 4.0 * bounded
        torch.testing.assert_close(logits[site], expected, atol=1e-3, rtol=1e-4)
    assert logits["logits"].abs().max() <= 8.0 < logits["bounded"].abs().max()
    assert torch.equal(logits["logits"] > 0, logits["bounded"] > 0)
    model = build_model(Config(logit_bound=0.0, noise_end=0.25), 1, 10).eval()   # no bound: the gain alone
    with torch.no_grad():
        at4 = model.mask_logits(x)
        model.logit_gain = 1.0
        torch.testing.assert_close(at4, 4.0 * model.mask_logits(x))
    import json
    from masklab.checkpoint import read_config
    given = json.loads(Config(noise_end=0.25).to_json())
    del given["gain_site"]
    (tmp_path / "config.json").write_text(json.dumps(given))
    assert read_config(tmp_path).gain_site == "bounded" and Config().gain_site == "logits"


def test_the_logit_gain_shrinks_the_gates_noise_but_not_the_eval_mask():
    """The gate reads gain * l: the eval mask 1[l > 0] is the same at any gain, the training mask agrees with it
    on more pixels (each pixel open with probability sigmoid(gain * l) instead of sigmoid(l)), and train() sets
    the schedule's gain before each step."""
    model = _model()
    x = torch.rand(4, 1, 48, 48)
    model.eval()
    with torch.no_grad():
        base_logits = model.mask_logits(x)
        hard1 = model.gate_relaxed(x, 2 / 3) > 0.5
        model.logit_gain = 4.0
        assert torch.equal(model.mask_logits(x) > 0, base_logits > 0)
        assert torch.equal(model.gate_relaxed(x, 2 / 3) > 0.5, hard1)
        model.train()
        agree = {}
        for gain in (1.0, 4.0):
            model.logit_gain = gain
            seen = model(x, 2 / 3, torch.Generator().manual_seed(0)).mask > 0.5
            agree[gain] = (seen == hard1).float().mean().item()
    assert agree[4.0] > agree[1.0]
    from masklab.data import open_data
    from masklab.losses import logit_gain_at
    from masklab.train import train
    cfg = Config(steps=6, log_every=6, batch_size=8, test_size=16, warmup=0.0, anneal_frac=0.8, noise_end=0.5)
    data = open_data(cfg)
    model = build_model(cfg, data.channels, data.classes)
    gains, original = [], model.forward
    model.forward = lambda *a, **k: (gains.append(model.logit_gain), original(*a, **k))[1]
    list(train(cfg, model, data))
    assert gains[:4] == [logit_gain_at(cfg, step) for step in range(1, 5)] and gains[0] < gains[3]
    from masklab.export import MaskOnly
    model = build_model(cfg, data.channels, data.classes).eval()          # evaluates at the final gain, 2
    x = data.test.x[:4]
    hard, m_eval = MaskOnly(model, 2 / 3)(x)
    assert torch.equal(m_eval, model.gate_relaxed(x, 2 / 3)) and torch.equal(hard, (m_eval > 0.5).float())


def test_the_commit_term_is_the_distance_of_m_eval_from_the_fixed_mask_and_vanishes_on_it():
    from masklab.losses import commit_loss
    hard = torch.tensor([[[[0.0, 1.0, 1.0, 0.0]]]])
    logits = torch.tensor([[[[-1.0, 1.0, 3.0, -3.0]]]], requires_grad=True)
    from masklab.gates import relaxed
    m = relaxed("hard_concrete", logits, 2 / 3)                      # 3 and -3 are past hard concrete's clamp
    loss = commit_loss(m, hard)
    assert loss.item() == pytest.approx((m[0, 0, 0, 0] + 1 - m[0, 0, 0, 1]).item() / 4)
    loss.backward()
    g = logits.grad.flatten()
    assert g[0] > 0 and g[1] < 0 and g[2] == 0 and g[3] == 0           # descent: -1 down, 1 up, the rest stay
    assert commit_loss(hard, hard).item() == 0


def test_with_commit_the_closing_phase_trains_the_branch_alone_and_the_classifier_on_the_current_mask():
    """commit changes nothing before the closing phase; in it the branch moves (the classification loss sends it
    nothing: its gradient is the commit term's) and the classifier sees x * 1[m_eval > 1/2] of the branch as it
    is at that step, the mask it is tested on."""
    from masklab.data import open_data
    from masklab.train import train
    cfg = Config(steps=6, log_every=1, batch_size=8, test_size=16, finetune=0.34)     # steps 5-6: the closing phase
    data = open_data(cfg)
    states, fed, seen, terms = {}, {}, {}, []
    for commit in (False, True):
        model = build_model(cfg, data.channels, data.classes)
        fed[commit], seen[commit], original = [], [], model.forward

        def spy(x, *args, _original=original, _seen=seen[commit], **kwargs):
            out = _original(x, *args, **kwargs)
            _seen.append(x * (out.relaxed.detach() > 0.5))
            return out

        model.forward = spy
        model.classifier.register_forward_pre_hook(lambda module, args, _fed=fed[commit]: _fed.append(args[0].clone()))
        for record in train(cfg.replace(commit=commit), model, data):
            states[commit, record.step] = {k: v.clone() for k, v in model.state_dict().items()}
            terms.append(record.loss - record.ce)
    for step in range(1, 5):
        assert all(torch.equal(states[False, step][k], states[True, step][k]) for k in states[False, step])
    assert all(torch.equal(a, b) for a, b in zip(fed[True][-2:], seen[True][-2:]))   # the current mask, both steps
    assert all(torch.equal(a, b) for a, b in zip(fed[True][:5], fed[False][:5]))      # step 5: the same branch still
    end = states[False, 6], states[True, 6]
    assert all(torch.equal(end[0][k], states[False, 4][k]) for k in end[0] if k.startswith("attention."))
    assert any(not torch.equal(end[1][k], states[True, 4][k]) for k in end[1] if k.startswith("attention."))
    assert terms[11] > 0 and terms[5] == pytest.approx(0, abs=1e-6)    # the run with commit logs its term, step 6


def test_committing_moves_m_eval_to_exactly_0_1_and_keeps_the_mask():
    """A branch whose logits start near 0 (half its m_eval in between 0 and 1, half the pixels kept), then a closing
    phase of 19 steps with and without commit (no area term, a high lr, so that it shows in a few steps): with
    it, most of m_eval ends exactly 0 or 1, and the hard mask stays what it is without it on most pixels (here half
    of them start a hair from the threshold, the worst case; in the screen's runs the area did not move)."""
    from masklab.data import open_data
    from masklab.metrics import bimodality
    from masklab.train import train
    cfg = Config(steps=20, warmup=0.0, anneal_frac=0.05, finetune=0.95, batch_size=16, test_size=100, noise_end=1.0,
                 lr=0.02, constraint=False, bimodal=0.0)
    data = open_data(cfg)
    masks = {}
    for commit in (False, True):
        model = build_model(cfg, data.channels, data.classes)
        with torch.no_grad():
            model.attention.body[-1].weight.mul_(20)
            model.attention.body[-1].bias.sub_(model.mask_logits(data.test.x).median())
            start = model.gate_relaxed(data.test.x, cfg.temperature_end)
        assert bimodality(start) < 0.6 and 0.45 < (start > 0.5).float().mean() < 0.55
        list(train(cfg.replace(commit=commit), model, data))
        with torch.no_grad():
            masks[commit] = model.eval().gate_relaxed(data.test.x, cfg.temperature_end)
    assert bimodality(masks[True]) > 0.85 and bimodality(masks[True]) > bimodality(masks[False]) + 0.2
    assert ((masks[True] > 0.5) == (masks[False] > 0.5)).float().mean() > 0.85


def test_the_commit_margin_pushes_each_logit_past_the_margin_on_its_own_side():
    """commit_margin: mean relu(margin - s * l), s = +1 where the fixed mask keeps the pixel, -1 where it drops it:
    a logit past the margin on its side gives nothing and gets no gradient; the others are pushed outward. A margin
    the bound would never let a logit reach is refused."""
    from masklab.config import ConfigError
    from masklab.losses import commit_loss
    hard = torch.tensor([1.0, 1.0, 0.0, 0.0])
    logits = torch.tensor([7.0, 1.0, -2.0, 3.0], requires_grad=True)
    loss = commit_loss(torch.zeros(4), hard, logits, margin=6.0)
    assert loss.item() == pytest.approx((0 + 5 + 4 + 9) / 4)
    loss.backward()
    assert logits.grad.tolist() == [0.0, -0.25, 0.25, 0.25]                          # descent: up, down, down
    with pytest.raises(ConfigError, match="under logit_bound"):
        Config(commit_margin=8.0)
    assert Config(commit_margin=8.0, logit_bound=0.0).commit_margin == 8.0


def test_commit_lr_scales_the_commit_optimizers_rate_and_the_objective_shows_the_hinge(monkeypatch):
    """The closing phase's own Adam steps at commit_lr times the run's lr; the app's objective names the hinge and
    its margin when commit_margin is on, the |m_eval - h| term otherwise."""
    import masklab.train
    from masklab.data import open_data
    from masklab.explain import objective_latex
    rates, adam = [], torch.optim.Adam

    def spy(params, lr, **kwargs):
        rates.append(lr)
        return adam(params, lr=lr, **kwargs)

    monkeypatch.setattr(masklab.train.torch.optim, "Adam", spy)
    cfg = Config(steps=4, log_every=2, batch_size=8, test_size=16, finetune=0.25, commit_lr=5.0, commit_margin=6.0)
    list(masklab.train.train(cfg, build_model(cfg, 1, 10), open_data(cfg)))
    assert rates == [cfg.lr, pytest.approx(5.0 * cfg.lr)]                # the run's, then the closing phase's
    assert r"\max(0,\ 6 - (2h - 1)\,l)" in " ".join(objective_latex(cfg))
    assert r"|m_{\text{eval}} - h|" in " ".join(objective_latex(Config()))



def test_distractors_paste_a_part_of_the_next_image_where_its_mask_is_into_the_first_half_only():
    from masklab.losses import distractors
    x = torch.zeros(4, 2, 24, 24)
    for i in range(4):
        x[i] = i + 1.0                                                  # each image one value: the source shows
    x[1, :, 6:10, 14:18] = 9.0                                          # image 1's object, where its mask is
    logits = torch.full((4, 1, 24, 24), -3.0)
    logits[1, 0, 6:10, 14:18] = 3.0                                     # image 1 keeps a 4 x 4 square
    out, pasted = distractors(x, logits, torch.Generator().manual_seed(0))
    side = 4                                                            # round(24 / 6)
    assert pasted.shape == (4, 1, 24, 24) and not pasted[2:].any()      # the second half is untouched
    assert torch.equal(out[2:], x[2:]) and torch.equal(out[~pasted.expand_as(x)], x[~pasted.expand_as(x)])
    for i in range(2):
        rows, cols = pasted[i, 0].nonzero(as_tuple=True)
        assert len(rows) == side * side and rows.max() - rows.min() == cols.max() - cols.min() == side - 1
    assert (out[0][pasted[0].expand(2, -1, -1)] == 9.0).all()          # image 1's kept square, centred on its mask
    assert (out[1][pasted[1].expand(2, -1, -1)] == 3.0).all()          # image 2 keeps nothing: its centre, all 3s
    assert not x.eq(9.0).logical_and(pasted.expand_as(x)).any()          # x itself is not written
    one, none = distractors(x[:1], logits[:1], None)                    # a batch of one: nothing to paste
    assert torch.equal(one, x[:1]) and not none.any()


def test_the_distract_term_closes_the_pasted_gates_and_only_them():
    from masklab.losses import distract_loss
    logits = torch.tensor([[[[2.0, -1.0], [0.5, 3.0]]]], requires_grad=True)
    pasted = torch.tensor([[[[True, False], [True, False]]]])
    loss = distract_loss(logits, pasted)
    assert loss.item() == pytest.approx((F.softplus(torch.tensor(2.0)) + F.softplus(torch.tensor(0.5))).item() / 2)
    loss.backward()
    assert (logits.grad[pasted] > 0).all() and (logits.grad[~pasted] == 0).all()   # descent lowers the pasted ones
    assert distract_loss(logits, torch.zeros_like(pasted)).item() == 0


def test_training_with_distractors_adds_the_term_and_leaves_the_closing_phase_alone():
    """At step 1 every gate is open (at gain 1, logits near the init bias 2): the pasted squares add about
    softplus(2) = 2.13."""
    from masklab.data import open_data
    from masklab.train import train
    losses = []
    for weight in (0.0, 1.0):
        cfg = Config(steps=1, log_every=1, batch_size=8, test_size=16, noise_end=1.0, distract=weight)
        data = open_data(cfg)
        losses.append(next(train(cfg, build_model(cfg, data.channels, data.classes), data)).loss)
    assert 1.5 < losses[1] - losses[0] < 2.5
    cfg = Config(steps=4, log_every=1, batch_size=8, test_size=16, warmup=0.0, anneal_frac=0.5, finetune=0.5, distract=1.0,
                 commit=False)
    data = open_data(cfg)
    records = list(train(cfg, build_model(cfg, data.channels, data.classes), data))
    assert [r.loss == pytest.approx(r.ce) for r in records[2:]] == [True, True]   # frozen: CE alone


def test_commit_pieces_teaches_the_branch_its_mask_without_the_small_pieces(monkeypatch):
    """commit_pieces: the fixed mask the closing phase teaches is the copy's hard mask cut by major_pieces (every
    piece it keeps is at least that share of its image's largest, and it keeps nothing the copy's mask did not):
    on a branch whose mask is in many pieces, pixels are dropped. It needs commit, and the objective names it."""
    import masklab.train
    from masklab.config import ConfigError
    from masklab.data import open_data
    from masklab.explain import objective_latex
    from masklab.metrics import _pieces
    cuts, taught = [], []
    cut, loss = masklab.train.major_pieces, masklab.train.commit_loss
    monkeypatch.setattr(masklab.train, "major_pieces", lambda hard, share: cuts.append((hard, cut(hard, share))) or
                        cuts[-1][1])
    monkeypatch.setattr(masklab.train, "commit_loss", lambda relaxed, hard, *a: taught.append(hard) or
                        loss(relaxed, hard, *a))
    cfg = Config(steps=4, log_every=2, batch_size=16, test_size=16, finetune=0.5, warmup=0.0, commit_pieces=0.5)
    data = open_data(cfg)
    model = build_model(cfg, data.channels, data.classes)
    with torch.no_grad():                                       # a speckled mask of many pieces: something to drop
        model.attention.body[-1].weight.normal_(0, 5.0, generator=torch.Generator().manual_seed(0))
        model.attention.body[-1].bias.fill_(0.0)
    list(masklab.train.train(cfg, model, data))
    assert len(cuts) == len(taught) == 2 and all(out is hard for (_, out), hard in zip(cuts, taught))
    for raw, out in cuts:
        assert (out <= raw).all() and out.sum() < raw.sum() and out.sum() > 0
        flat = out.bool().flatten(0, -3)
        keys, _, largest, _ = _pieces(flat)
        pieces, sizes = keys[flat].unique(return_counts=True)
        assert (sizes >= 0.5 * largest[pieces // (flat[0].numel() + 1)]).all()
    with pytest.raises(ConfigError, match="turn commit on"):
        Config(commit_pieces=0.5, commit=False)
    assert r"0.5 \times" in " ".join(objective_latex(cfg)) and "pieces" not in " ".join(objective_latex(Config()))


@pytest.mark.parametrize("preset_name", ["hard-concrete", "unmasked"])
def test_weight_averaging_ends_with_the_mean_of_the_classifiers_last_steps_and_changes_nothing_else(preset_name):
    """average 0.5 on 6 steps: the run trains exactly as without it, the branch ends as it did, and the classifier
    ends with the mean of its weights after steps 4, 5 and 6 (for a masked and an unmasked run)."""
    from masklab.config import preset
    from masklab.data import open_data
    from masklab.train import train
    cfg = preset(preset_name, steps=6, log_every=1, batch_size=8, test_size=16, finetune=0.34)
    data = open_data(cfg)
    ends = {}
    for average in (0.0, 0.5):
        model = build_model(cfg, data.channels, data.classes)
        iterates, records = [], []
        for record in train(cfg.replace(average=average), model, data):
            records.append(record)
            iterates.append({k: v.clone() for k, v in model.classifier.state_dict().items()})
        ends[average] = model.state_dict(), iterates, records
    plain, plain_iterates, plain_records = ends[0.0]
    averaged, iterates, records = ends[0.5]
    untimed = lambda rs: [{**r.to_dict(), "seconds": 0} for r in rs]
    assert untimed(records) == untimed(plain_records)
    assert all(torch.equal(a[k], b[k]) for a, b in zip(plain_iterates[:5], iterates[:5]) for k in a)
    mean = {k: torch.stack([it[k] for it in plain_iterates[3:]]).mean(0) for k in plain_iterates[0]}
    for k, v in mean.items():
        assert torch.allclose(averaged["classifier." + k], v, atol=1e-7), k
        assert not torch.equal(averaged["classifier." + k], plain["classifier." + k]), k
    assert all(torch.equal(averaged[k], plain[k]) for k in plain if not k.startswith("classifier."))
