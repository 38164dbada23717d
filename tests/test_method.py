"""The method issue's pieces: oracle references, the two-sided constraint, the closing phase, bilinear mask logits."""
import pytest
import torch

from masklab.config import ConfigError, preset
from masklab.data import DataError, open_data
from masklab.metrics import evaluate, predict
from masklab.models import build_model
from masklab.train import train

SMALL = dict(canvas=24, clutter=2, batch_size=8, test_size=16, log_every=1)


def test_oracle_ink_classifies_exactly_the_true_ink():
    """oracle-ink's mask is the test set's ink: every kept pixel is ink and every ink pixel is kept."""
    cfg = preset("oracle-ink", steps=2, **SMALL)
    data = open_data(cfg)
    model = build_model(cfg, data.channels, data.classes)
    list(train(cfg, model, data))
    m = evaluate(model, data.test, cfg.temperature_end)
    assert m["area"] == pytest.approx(data.test.ink.float().mean().item())
    assert m["ink_recall"] == 1.0 and m["precision_in_box"] == 1.0 and m["bimodality"] == 1.0


def test_oracle_box_keeps_the_box_and_refuses_images_without_one():
    """oracle-box keeps exactly the object's box; on images with no known box it says so instead of guessing."""
    cfg = preset("oracle-box", steps=1, **SMALL)
    data = open_data(cfg)
    model = build_model(cfg, data.channels, data.classes)
    m = evaluate(model, data.test, cfg.temperature_end)
    assert m["iou_box"] == pytest.approx(1.0) and m["precision_in_box"] == 1.0
    with pytest.raises(ValueError, match="oracle-box"):
        predict(model, data.test.x, cfg.temperature_end)
    with pytest.raises(ValueError, match="true box"):
        model(data.test.x)


def test_oracle_needs_a_dataset_that_knows_its_objects(tmp_path):
    """An image folder has no ink: an oracle on it is a clear DataError, and an oracle with a learned gate is
    refused by Config."""
    from PIL import Image
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(5):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / c / f"{i}.png")
    cfg = preset("oracle-ink", data=f"folder:{tmp_path}", image_size=8, steps=1, batch_size=2, test_size=2)
    data = open_data(cfg)
    with pytest.raises(DataError, match="oracle"):
        data.truth_batch(2, torch.Generator().manual_seed(0), "ink")
    with pytest.raises(ConfigError, match="oracle"):
        preset("hard-concrete", oracle="ink")


def _multipliers(cfg):
    data = open_data(cfg)
    model = build_model(cfg, data.channels, data.classes)
    return [r.multiplier for r in train(cfg, model, data)]


def test_area_floor_pushes_a_mask_that_closed_below_it_back_open():
    """Gates closed far below the target (init_bias -6, target 1.0): without a floor nothing pushes them open
    (the multiplier stays 0); with area_floor 0.5 the net multiplier goes negative by dual_lr * (0.5 - area)
    a step, and once the area is above the floor the floor lets go."""
    cfg = preset("hard-concrete-plain", steps=5, warmup=1.0, anneal_frac=0.0, dual_lr=0.5, init_bias=-6.0, **SMALL)
    assert _multipliers(cfg) == [0.0] * 5
    pushed = _multipliers(cfg.replace(area_floor=0.5))
    assert all(b < a < 0 for a, b in zip(pushed, pushed[1:]))
    assert pushed[0] == pytest.approx(-0.5 * 0.5, abs=0.01)
    opened = _multipliers(cfg.replace(area_floor=0.5, init_bias=6.0))      # area ~1 > 0.5: no push
    assert opened == [0.0] * 5


def test_closing_phase_freezes_the_mask_and_trains_the_classifier_on_the_hard_mask():
    """In the last `finetune` fraction the attention branch no longer changes (not even through a mask loss on
    the logits, l0 here), the multiplier is held, and the classifier still learns."""
    cfg = preset("hard-concrete-plain", steps=10, warmup=0.0, anneal_frac=0.5, finetune=0.3, mask_loss="l0", beta=1.0,
                 **SMALL)
    data = open_data(cfg)
    model = build_model(cfg, data.channels, data.classes)
    run = train(cfg, model, data)
    records = [next(run) for _ in range(7)]
    attention = {k: v.clone() for k, v in model.attention.state_dict().items()}
    classifier = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    records += list(run)
    assert all(torch.equal(v, model.attention.state_dict()[k]) for k, v in attention.items())
    assert not all(torch.equal(v, model.classifier.state_dict()[k]) for k, v in classifier.items())
    assert len({r.multiplier for r in records[6:]}) == 1
    with pytest.raises(ConfigError, match="finetune"):
        preset("hard-concrete", warmup=0.3, anneal_frac=0.6, finetune=0.2)


def test_bilinear_mask_logits_follow_edges_inside_a_block():
    """Stride-2 logits upsampled bilinearly are full resolution and not constant over 2x2 blocks (nearest is)."""
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    for upsample, blocky in (("nearest", True), ("bilinear", False)):
        cfg = preset("hard-concrete", mask_upsample=upsample, init_bias=0.0)
        logits = build_model(cfg, 1, 10).mask_logits(x)
        assert logits.shape == (2, 1, 16, 16)
        same = torch.equal(logits[..., ::2, ::2], logits[..., 1::2, 1::2])
        assert same == blocky, upsample


def test_shuffled_mask_logits_see_every_pixel_of_a_block_and_give_each_its_own_logit():
    """mask_upsample shuffle: the branch reads each stride x stride block whole (pixel_unshuffle, not an average)
    and writes a logit for each of its pixels (pixel_shuffle): two images whose blocks have the same mean but
    different pixels get different masks (avg-pooled nearest and bilinear cannot tell them apart), the logits are
    not constant over blocks, and odd sizes come back whole."""
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    swapped = x.clone()
    swapped[..., 0::2, :], swapped[..., 1::2, :] = x[..., 1::2, :], x[..., 0::2, :]   # rows swapped in each block
    for upsample, tells in (("nearest", False), ("bilinear", False), ("shuffle", True)):
        model = build_model(preset("hard-concrete", mask_upsample=upsample, init_bias=0.0), 1, 10)
        assert (not torch.allclose(model.mask_logits(x), model.mask_logits(swapped), atol=1e-5)) == tells, upsample
    model = build_model(preset("hard-concrete", mask_upsample="shuffle", init_bias=0.0, mask_stride=3), 3, 10)
    logits = model.mask_logits(torch.rand(2, 3, 17, 16, generator=torch.Generator().manual_seed(1)))
    assert logits.shape == (2, 1, 17, 16)
    assert not torch.equal(logits[..., 0:15:3, 0:15:3], logits[..., 1:16:3, 1:16:3])
    assert [p.shape for p in model.attention.body[0].parameters()][0][1] == 3 * 9   # a 3x3 block of RGB read in


def test_logit_bound_keeps_every_logit_inside_it():
    """logit_bound b: the attention branch's logits are b * tanh(l / b), inside (-b, b) however large l is."""
    cfg = preset("hard-concrete-plain", logit_bound=3.0, init_bias=50.0)
    logits = build_model(cfg, 1, 10).mask_logits(torch.rand(2, 1, 16, 16))
    assert logits.abs().max() <= 3.0 and logits.min() > 2.9           # init_bias 50 sits at the ceiling
    cfg = cfg.replace(init_bias=-2.0)
    assert build_model(cfg, 1, 10).mask_logits(torch.rand(2, 1, 16, 16)).max() < -1.5        # inside: ~unchanged


def test_mask_norm_makes_the_logits_blind_to_the_image_scale():
    """With group-normalised features a 500x brighter image moves the mask logits by little; without, the logits
    scale with it (the unnormalised photo features that let one step move every gate at once)."""
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for norm, most in ((True, 1.0), (False, None)):
        model = build_model(preset("hard-concrete-plain", mask_norm=norm, init_bias=0.0), 3, 4)
        change = (model.mask_logits(500 * x) - model.mask_logits(x)).abs().max().item()
        if most is None:
            assert change > 5.0, change
        else:
            assert change < most, change
