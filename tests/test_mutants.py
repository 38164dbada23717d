"""Tests written for the survivors of the first mutmut pass (docs/MUTATION.md, "First pass"): each pins a
behaviour that no other fast test looked at, and names the mutant(s) it kills. Fast and seeded: no training."""
import math
import warnings
from types import SimpleNamespace

import pytest
import torch

from masklab.config import Config
from masklab.gates import GATES, _logistic_noise, area_estimate, hard_concrete, hard_concrete_open_prob
from masklab.losses import MASK_LOSSES, area_target, objective, seed_loss, sorted_area_loss, temperature_at


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- gates -----------------------------------------------------------------------------------------------

def test_logistic_noise_is_finite_and_bounded_at_the_extreme_uniform_draws(monkeypatch):
    """torch.rand can return exactly 0 (and at most 1 - 2**-24): the clamp to [1e-6, 1 - 1e-6] keeps the noise
    finite there and bounds it by about +-log(1e6) both ways. Kills gates._logistic_noise 12, 13, 15, 17, 18."""
    extremes = torch.tensor([0.0, 2.0 ** -24, 0.5, 1 - 2.0 ** -24])
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: extremes.reshape(shape).clone())
    noise = _logistic_noise(torch.zeros(4), None)
    bound = math.log((1 - 1e-6) / 1e-6)                   # 13.8; unclamped, 1 - 2**-24 would give 16.6
    assert torch.isfinite(noise).all()
    assert noise[0].item() == pytest.approx(-bound, rel=2e-3) and noise[1].item() == noise[0].item()
    assert noise[2].item() == 0.0
    assert noise[3].item() == pytest.approx(bound, rel=2e-3)


def test_training_noise_does_not_depend_on_torchs_default_dtype():
    """The uniform draw is float32 whatever torch's default dtype is, so a seeded run samples the same masks in
    a process that set float64 as its default. Kills gates._logistic_noise 5, 9 (dtype dropped)."""
    logits = torch.zeros(1, 1, 8, 8)
    a = GATES["binary_concrete"](logits, 2 / 3, True, False, _gen(3))
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        b = GATES["binary_concrete"](logits, 2 / 3, True, False, _gen(3))
    finally:
        torch.set_default_dtype(old)
    assert torch.equal(a, b)


def test_noise_and_the_sorted_area_ideal_are_made_on_the_inputs_device(monkeypatch):
    """The logistic noise and the sorted-area loss's ideal mask are created on their input's device, not torch's
    default (the CPU): on a GPU, a CPU tensor added to a CUDA one is an error. Without a GPU the test asks the
    two factory calls which device they were given (PyTorch's "meta" device would show it too, but its first
    use costs a second). Kills gates._logistic_noise 4, 8 and losses.sorted_area_loss 15, 18."""
    logits, mask = torch.zeros(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    asked = {}

    def spy(name):
        real = getattr(torch, name)

        def factory(*args, **kwargs):
            asked[name] = kwargs.get("device")
            return real(*args, **kwargs)
        return factory

    monkeypatch.setattr(torch, "rand", spy("rand"))
    monkeypatch.setattr(torch, "zeros", spy("zeros"))
    _logistic_noise(logits, _gen())
    sorted_area_loss(mask, 0.25)
    assert asked == {"rand": logits.device, "zeros": mask.device}


def test_straight_through_backward_is_the_slope_of_the_tempered_sigmoid():
    """Forward 1[l > 0]; backward d sigmoid(l / T) / dl = s (1 - s) / T, so the temperature sets the slope.
    Kills gates.straight_through 3 (l * T)."""
    logits = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    GATES["straight_through"](logits, 0.5, True, True).sum().backward()
    s = torch.sigmoid(logits.detach() / 0.5)
    assert torch.allclose(logits.grad, s * (1 - s) / 0.5)


def test_binary_and_hard_concrete_draw_the_same_hard_mask_from_the_same_generator():
    """Both open a pixel exactly when l + noise > 0 (noise = log u - log(1 - u) from the run's generator), so
    with one seed the two gates' hard forwards agree pixel for pixel. Flipping the noise's sign leaves each
    gate's distribution unchanged but breaks this. Kills gates.binary_concrete 4, gates.hard_concrete 6."""
    logits = torch.linspace(-4, 4, 4096).reshape(1, 1, 64, 64)
    bc = GATES["binary_concrete"](logits, 2 / 3, True, True, _gen(7))
    hc = GATES["hard_concrete"](logits, 2 / 3, True, True, _gen(7))
    assert torch.equal(bc, hc)
    assert 0.3 < bc.mean().item() < 0.7


def test_hard_concrete_defaults_to_the_unclamped_backward():
    """Called without clamp_backward (as Config's default), saturated samples still get the classifier's
    gradient through the unclamped stretch. Kills gates.hard_concrete 1 (default True)."""
    logits = torch.tensor([-6.0, 6.0], requires_grad=True)
    mask = hard_concrete(logits, 2 / 3, True, True, _gen(0))
    assert mask.tolist() == [0.0, 1.0]
    mask.sum().backward()
    assert (logits.grad > 0).all()


def test_area_estimate_is_expected_l0_by_default_and_the_seen_fraction_with_seen():
    """Hard concrete: P(z > 0) by default, sigmoid(l) = P(z > 1/2) with `seen` (smaller); other gates: the
    mask's mean either way. Kills gates.area_estimate 1, 5, 6."""
    logits = torch.tensor([[-2.0, 0.0, 1.0, 3.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    l0 = area_estimate("hard_concrete", logits, mask, 0.5)
    seen = area_estimate("hard_concrete", logits, mask, 0.5, seen=True)
    assert l0.item() == pytest.approx(hard_concrete_open_prob(logits, 0.5).mean().item(), rel=1e-6)
    assert seen.item() == pytest.approx(torch.sigmoid(logits).mean().item(), rel=1e-6)
    assert seen.item() < l0.item() - 0.05
    assert area_estimate("straight_through", logits, mask, 0.5, seen=True).item() == 0.75


# --- losses ----------------------------------------------------------------------------------------------

def _out():
    """A model output with known values: 2 images of 2x2 mask pixels, 3 classes."""
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]], [[[1.0, 1.0], [0.0, 0.0]]]])
    relaxed = torch.tensor([[[[0.9, 0.2], [0.5, 1.0]]], [[[0.75, 1.0], [0.0, 0.1]]]])
    logits_m = torch.tensor([[[[2.0, -1.0], [0.0, 3.0]]], [[[1.0, 4.0], [-2.0, -0.5]]]])
    return SimpleNamespace(logits=torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]]), mask=mask, relaxed=relaxed,
                           mask_logits=logits_m, features=torch.tensor([[-1.0, 2.0], [3.0, -4.0]]),
                           area=torch.tensor(0.6), temperature=2 / 3)


Y = torch.tensor([0, 1])


@pytest.mark.parametrize("mask_loss", ["seed", "l0", "sorted_area"])
def test_objective_gives_the_mask_loss_its_config_and_the_current_target(mask_loss):
    """The seed loss reads alpha and lam from the config, l0 the gate, sorted_area the annealed target: the
    objective's mask term is each one's own formula. Kills losses.objective 9 (target None) and 8 (cfg None)."""
    out = _out()
    cfg = Config(mask_loss=mask_loss, beta=0.5, alpha=0.7, lam=0.01, constraint=False, tv=0.0, bimodal=0.0)
    expected = {"seed": seed_loss(out.mask, 0.7, 0.01).mean(),
                "l0": hard_concrete_open_prob(out.mask_logits, 2 / 3).mean(),
                "sorted_area": sorted_area_loss(out.relaxed, 0.25)}[mask_loss]
    loss, ce, mask_term = objective(cfg, out, Y, 0.25, torch.tensor(0.0))
    assert mask_term.item() == pytest.approx(expected.item(), rel=1e-6)
    assert mask_term.item() == pytest.approx(MASK_LOSSES[mask_loss](out, cfg, 0.25).item(), rel=1e-6)
    assert loss.item() == pytest.approx(ce.item() + 0.5 * expected.item(), rel=1e-6)


def test_sorted_area_loss_keeps_the_masks_dtype():
    """Like every other mask loss, the sorted-area loss is computed in the mask's own dtype (a bfloat16 mask
    gives a bfloat16 loss; the objective casts once). Kills losses.sorted_area_loss 16, 19 (ideal in float32)."""
    mask = torch.tensor([[[[0.9, 0.2], [0.5, 1.0]]]], dtype=torch.bfloat16)
    loss = sorted_area_loss(mask, 0.5)
    assert loss.dtype == torch.bfloat16
    assert loss.float().item() == pytest.approx((0.2 ** 2 + 0.5 ** 2 + 0.1 ** 2 + 0.0) / 4, rel=1e-2)


def test_without_an_anneal_the_target_drops_to_the_goal_right_after_the_warmup():
    """anneal_frac 0: the target is 1.0 through the warm-up's last step (step <= warmup * steps), then the goal.
    Kills losses.area_target 6, 8, 9."""
    cfg = Config(steps=10, warmup=0.5, anneal_frac=0.0, area_target=0.2)
    assert [area_target(cfg, s) for s in (1, 5, 6, 10)] == [1.0, 1.0, 0.2, 0.2]


def test_an_anneal_of_one_step_still_passes_through_the_middle():
    """The linear anneal interpolates even when it spans a single step: start 0.5, span 1, so step 1 is halfway
    from 1.0 to the goal. Kills losses.area_target 5 (span <= 1 treated as no anneal)."""
    cfg = Config(steps=4, warmup=0.125, anneal_frac=0.25, area_target=0.2)
    assert area_target(cfg, 1) == pytest.approx(0.6)
    assert area_target(cfg, 0) == 1.0 and area_target(cfg, 2) == pytest.approx(0.2)


def test_temperature_stays_at_its_end_past_the_last_step_and_a_two_step_run_reaches_it():
    """The geometric anneal is clamped: after the last step the temperature stays temperature_end; a run of two
    steps goes from start to end in one. Kills losses.temperature_at 6 (min 2.0), 19 (max(2, steps - 1))."""
    cfg = Config(steps=11, temperature=1.0, temperature_end=0.25)
    assert temperature_at(cfg, 20) == pytest.approx(0.25)
    assert temperature_at(cfg, 0) == pytest.approx(1.0)
    two = Config(steps=2, temperature=1.0, temperature_end=0.25)
    assert temperature_at(two, 1) == pytest.approx(1.0) and temperature_at(two, 2) == pytest.approx(0.25)


# --- second pass (all six modules, docs/MUTATION.md "Second pass") ----------------------------------------

def test_hard_mask_is_strictly_above_the_threshold_in_the_logits_dtype():
    """m_eval > 1/2, not >=: a straight-through gate's m_eval at logit 0 is exactly 1/2 and stays closed; the
    mask has the logits' dtype so it multiplies an image as it is. Kills gates.MaskGate.hard_mask 2, 4."""
    from masklab.gates import MaskGate
    logits = torch.tensor([[-1.0, 0.0, 1.0]], dtype=torch.float64)
    hard = MaskGate("straight_through").hard_mask(logits)
    assert hard.dtype == torch.float64 and hard.tolist() == [[0.0, 0.0, 1.0]]


@pytest.mark.parametrize("knob, text", [
    (dict(lo=0, hi=1), "in [0, 1]"), (dict(lo=0, hi=1, lo_open=True), "in (0, 1]"),
    (dict(lo=0, hi=1, hi_open=True), "in [0, 1)"), (dict(lo=0), ">= 0"), (dict(lo=0, lo_open=True), "> 0"),
    (dict(hi=2.5), "<= 2.5"), (dict(hi=2.5, hi_open=True), "< 2.5"),
    (dict(lo=8, hi=1024, off=0, off_means="native"), "0 (native) or in [8, 1024]"),
    (dict(lo=0, off=-1, off_means="auto"), "-1 (auto) or >= 0"), (dict(lo=1e-6, hi=10), "in [1e-06, 10]"),
])
def test_a_knob_says_its_range_as_the_error_message_does(knob, text):
    """Kills config.Knob.describe 3-11 and the rest of its survivors (the text was only ever searched for)."""
    from masklab.config import Knob
    assert Knob(**knob).describe() == text


def test_a_config_error_quotes_the_field_and_its_range():
    from masklab.config import ConfigError
    with pytest.raises(ConfigError, match=r"^alpha must be in \[0, 1\]$"):
        Config(alpha=1.5)
    with pytest.raises(ConfigError, match=r"lam must be > 0 \(log\(m \+ lam\) is -inf at m = 0\)"):
        Config(lam=0.0)


def test_slider_stops_cover_the_span_with_the_off_value_and_the_current_one():
    """Linear stops step by `step` over [lo, hi] (or `span`); log stops are 1-2-3-5 a decade within the span;
    the off value and the current value are always among them, sorted, once. Kills config.Knob.stops."""
    from masklab.config import Knob
    assert Knob(lo=0, hi=1, slider="linear", step=0.25).stops() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert Knob(lo=0, hi=1, slider="linear", step=0.25).stops(0.6) == [0.0, 0.25, 0.5, 0.6, 0.75, 1.0]
    assert Knob(lo=0, hi=1, hi_open=True, slider="linear", step=0.5).stops() == [0.0, 0.5]
    assert Knob(lo=0, slider="log", span=(1e-2, 1)).stops() == [0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0]
    assert Knob(lo=0, lo_open=True, slider="log", span=(0.05, 0.5)).stops(0.07) == [0.05, 0.07, 0.1, 0.2, 0.3, 0.5]
    assert Knob(lo=1, off=0.0, slider="linear", step=1, span=(1, 3)).stops() == [0.0, 1.0, 2.0, 3.0]


def test_every_field_keeps_its_help_and_knob():
    """The help text and knob of each field come from _f's metadata (the CLI, the app and errors read them).
    Kills config._f."""
    from dataclasses import fields

    from masklab.config import HELP, KNOBS, Knob
    assert set(HELP) == set(KNOBS) == {f.name for f in fields(Config)}
    assert all(isinstance(HELP[n], str) and len(HELP[n]) > 10 for n in HELP)
    assert all(isinstance(k, Knob) for k in KNOBS.values())
    assert KNOBS["alpha"].label == "α (alpha)" and KNOBS["alpha"].hi == 1 and KNOBS["lam"].lo_open


def test_booleans_and_floats_are_written_so_they_parse_back():
    """Kills config._format 1, 2: true/false in lower case, floats as their shortest repr."""
    from masklab.config import _format, parse_value
    assert _format(True) == "true" and _format(False) == "false" and _format(0.1) == "0.1"
    assert parse_value("hard_forward", _format(False)) is False and parse_value("lr", _format(2e-3)) == 2e-3


# --- images ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, values, expected", [
    ("I;16", [0, 257, 65535], [0, 1, 255]),                   # 16-bit: / 257
    ("I;16", [0, 257, 1000], [0, 1, 4]),                      # / 257 even when not stretched over 0..65535
    ("I", [0, 1000, 65535], [0, 4, 255]),                     # 8..16-bit-valued ints: / 257
    ("I", [0, 128, 255], [0, 128, 255]),                      # already 8-bit-valued: kept
    ("F", [0.0, 0.5, 1.0], [0, 128, 255]),                    # float in [0, 1]: x 255
    ("F", [-2.0, 0.0, 2.0], [0, 128, 255]),                   # anything else: stretched min..max
    ("I", [100000, 150000, 200000], [0, 128, 255]),
    ("F", [3.0, 3.0, 3.0], [3, 3, 3]),                        # constant 8-bit-valued: kept as it is
    ("F", [float("nan"), 0.5, float("inf")], [0, 128, 0]),    # non-finite: 0
    ("F", [float("-inf"), 0.5, 1.0], [0, 128, 255]),
    ("F", [0.0, 0.75, 1.0], [0, 191, 255]),
    ("F", [0.0, 1.5, 2.0], [0, 2, 2]),                        # past 1 but within 0..255: kept, not x 255
    ("I", [0, 100, 200], [0, 100, 200]), ("I", [10, 100, 255], [10, 100, 255]),
    ("F", [10.0, 100.0, 256.0], [0, 93, 255]),                # just past 255: stretched
    ("F", [300.0, 300.0], [0, 0]),                            # constant outside 0..255: zeros, no 0 / 0
    ("F", [], []),
    ("I", [0, 1000, 2570], [0, 4, 10]),                       # 16-bit-valued from 0, not spanning it: / 257 ...
    ("I", [0, 256], [0, 1]), ("I", [257, 65535], [1, 255]),   # ... at both ends of the 16-bit range (third pass)
    ("I", [1000, 65536], [0, 255]),                           # past 16 bits: stretched
])
def test_wide_grayscale_is_brought_to_8_bits_by_the_range_its_type_implies(mode, values, expected):
    """Kills images._to_8bit (38 survivors: no test had a 16-bit or float image)."""
    import numpy as np

    from masklab.images import _to_8bit
    with warnings.catch_warnings():
        warnings.simplefilter("error")                        # a 0 / 0 warns before it gives NaN
        out = _to_8bit(mode, np.array(values, dtype=np.float64))
    assert out.dtype == np.uint8 and out.tolist() == expected


def test_a_16_bit_png_upload_becomes_the_same_8_bit_image():
    import io

    import numpy as np
    from PIL import Image

    from masklab.images import open_image, to_tensor
    a = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369)          # 0 .. 65535
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    x = to_tensor(open_image(buf.getvalue()), 1, None)
    assert x.shape == (1, 1, 4, 4)
    assert (x[0, 0] * 255).round().flatten().tolist() == [round(v / 257) for v in a.flatten().tolist()]


def test_to_tensor_fits_the_size_box_keeping_the_aspect_ratio_and_never_drops_a_side_to_zero():
    """size is (height, width): the image is scaled by the tighter of the two ratios; a side that would round to 0
    becomes 1, and a side already 1 pixel stays 1. Kills images.to_tensor 38 (size[1] / h), 63 (max(2, ...))."""
    from PIL import Image

    from masklab.images import to_tensor
    assert to_tensor(Image.new("L", (20, 20)), 1, (10, 40)).shape == (1, 1, 10, 10)
    assert to_tensor(Image.new("RGB", (30, 10)), 3, (6, 12)).shape == (1, 3, 4, 12)
    assert to_tensor(Image.new("L", (2, 1000)), 1, (10, 10)).shape == (1, 1, 10, 1)      # width 0.02 -> 1
    assert to_tensor(Image.new("L", (1, 5)), 1, None).shape == (1, 1, 5, 1)


def test_to_tensor_resizes_bilinearly_from_pixel_centres_and_antialiases_when_shrinking():
    """Upscaling [0, 1] twice gives 0, 1/4, 3/4, 1 (pixel centres, align_corners=False: True would give thirds);
    shrinking a 1-pixel checkerboard threefold averages it to grey, where sampling without antialiasing would
    alias it into a coarser checkerboard of 0s and 1s. Kills images.to_tensor 84 (align_corners=True), 76 and
    81 (antialias off)."""
    import numpy as np
    from PIL import Image

    from masklab.images import to_tensor
    up = to_tensor(Image.fromarray(np.array([[0, 255], [0, 255]], dtype=np.uint8)), 1, (4, 4))
    assert up[0, 0].tolist() == [[0.0, 0.25, 0.75, 1.0]] * 4
    board = (np.indices((48, 48)).sum(0) % 2 * 255).astype(np.uint8)
    down = to_tensor(Image.fromarray(board), 1, (16, 16))
    assert down.shape == (1, 1, 16, 16)
    assert down.min() > 0.45 and down.max() < 0.55


def test_to_uint8_rounds_clamps_and_lays_out_channels_for_pil():
    """Kills images.to_uint8's survivors: 1 channel -> (H, W), 3 -> (H, W, 3), values rounded, not truncated."""
    from masklab.images import to_uint8
    x = torch.tensor([[[0.0, 0.5, 1.0, 2.0], [-1.0, 0.002, 0.998, 0.25]]])           # (1, 2, 4)
    assert to_uint8(x).shape == (2, 4) and to_uint8(x).tolist() == [[0, 128, 255, 255], [0, 1, 254, 64]]
    rgb = torch.stack([torch.zeros(2, 2), torch.full((2, 2), 0.5), torch.ones(2, 2)])
    assert to_uint8(rgb).shape == (2, 2, 3) and to_uint8(rgb)[0, 0].tolist() == [0, 128, 255]
    assert to_uint8(torch.ones(3, 3)).shape == (3, 3)


def test_enlarge_keeps_pixels_sharp_and_leaves_large_images_alone():
    from PIL import Image

    from masklab.images import enlarge
    small = Image.new("L", (10, 5))
    small.putpixel((0, 0), 255)
    big = enlarge(small, side=160)
    assert big.size == (160, 80) and big.getpixel((15, 15)) == 255 and big.getpixel((16, 16)) == 0
    assert enlarge(small, side=15).size == (10, 5)
    assert enlarge(Image.new("L", (200, 100)), side=160).size == (200, 100)


def test_png_bytes_round_trip_and_the_histogram_of_a_mask_result():
    import io

    from PIL import Image

    from masklab.images import MaskResult, png_bytes
    img = Image.new("RGB", (3, 2), (10, 20, 30))
    again = Image.open(io.BytesIO(png_bytes(img)))
    assert again.format == "PNG" and again.size == (3, 2) and again.getpixel((2, 1)) == (10, 20, 30)
    relaxed = torch.tensor([[[0.0, 0.0, 0.3, 1.0]]])
    r = MaskResult(torch.zeros(1, 1, 4), relaxed, (relaxed > 0.5).float(), torch.tensor([0.2, 0.8]), 0.25)
    assert r.histogram(4).tolist() == [0.5, 0.25, 0.0, 0.25]
    assert r.histogram(2).sum() == pytest.approx(1.0)
    assert r.top(["a", "b"], k=1) == [{"class": "b", "probability": 0.8}]


# --- checkpoint ------------------------------------------------------------------------------------------

def test_run_ids_are_dated_readable_and_safe(monkeypatch):
    import time as clock

    from masklab.checkpoint import new_run_id
    monkeypatch.setattr(clock, "strftime", lambda fmt, *a: "20261129-150000")
    assert new_run_id(Config(seed=3)) == "20261129-150000-hard_concrete-s3"
    assert new_run_id(Config(), "my run/../x") == "20261129-150000-my-run-..-x-s0"
    assert new_run_id(Config(), "///") == "20261129-150000-run-s0"


def test_unique_dir_appends_a_number_instead_of_reusing_a_folder(tmp_path):
    from masklab.checkpoint import unique_dir
    first = unique_dir(tmp_path / "root", "r")
    second = unique_dir(tmp_path / "root", "r")
    third = unique_dir(tmp_path / "root", "r")
    assert [p.name for p in (first, second, third)] == ["r", "r-2", "r-3"] and all(p.is_dir() for p in (first, third))


def test_read_metrics_gives_floats_nothing_for_a_run_without_a_table_and_an_error_for_a_damaged_one(tmp_path):
    from masklab.checkpoint import CheckpointError, read_metrics
    (tmp_path / "metrics.csv").write_text("step,loss\n1,0.5\n2,0.25\n")
    assert read_metrics(tmp_path) == [{"step": 1.0, "loss": 0.5}, {"step": 2.0, "loss": 0.25}]
    assert read_metrics(tmp_path / "absent") == []
    (tmp_path / "metrics.csv").write_text("step,loss\n1,lots\n")
    with pytest.raises(CheckpointError, match="not a metrics table"):
        read_metrics(tmp_path)


# --- metrics ---------------------------------------------------------------------------------------------

def test_the_pareto_front_keeps_undominated_finished_uncollapsed_rows_by_area():
    """Kills metrics.pareto (35 survivors: it was tested only through the benchmark and sweep files) and
    metrics._truthy (collapsed may come back from a CSV as the text 'True')."""
    from masklab.metrics import pareto
    rows = [{"id": "a", "area": 0.1, "accuracy_hard": 0.9},
            {"id": "b", "area": 0.05, "accuracy_hard": 0.8},
            {"id": "c", "area": 0.2, "accuracy_hard": 0.85},          # dominated by a
            {"id": "d", "area": 0.1, "accuracy_hard": 0.9},           # a tie with a: both stay
            {"id": "e", "area": 0.01, "accuracy_hard": 0.99, "collapsed": "True"},
            {"id": "f", "area": 0.02, "accuracy_hard": 0.99, "collapsed": True},
            {"id": "g", "area": None, "accuracy_hard": 0.99},
            {"id": "h", "area": 0.3, "accuracy_hard": None},
            {"id": "i", "area": 0.5, "accuracy_hard": 0.95, "collapsed": "false"},
            {"id": "j", "area": 0.1, "accuracy_hard": 0.7, "accuracy_soft": 0.95},
            {"id": "k", "area": 0.1, "accuracy_hard": 0.85},          # same area as a, less accurate
            {"id": "l", "area": 0.2, "accuracy_hard": 0.9},           # as accurate as a, larger
            {"id": "m", "area": 0.7, "accuracy_hard": 0.97, "collapsed": False}]
    assert [r["id"] for r in pareto(rows)] == ["b", "a", "d", "i", "m"]
    assert [r["id"] for r in pareto(rows[9:10] + rows[:2], accuracy="accuracy_soft")] == ["j"]


def test_an_area_constraint_resumes_from_its_state_dict():
    """state_dict / load_state_dict carry both multipliers (mu pushes closed, nu open), detached copies on the CPU:
    a resumed constraint gives the same penalty. Kills constraint.AreaConstraint.state_dict 1-4."""
    from masklab.constraint import AreaConstraint
    a = AreaConstraint(target=0.1, steps=10, warmup=0.0, anneal_frac=0.0, dual_lr=1.0, floor=0.5)
    a(torch.tensor(0.6), 5)
    a.update()                                         # mu = 0.5
    state = a.state_dict()
    assert set(state) == {"mu", "nu"} and state["mu"].item() == pytest.approx(0.5) and state["nu"].item() == 0.0
    assert not state["mu"].requires_grad and state["mu"].device.type == "cpu"
    b = AreaConstraint(target=0.1, steps=10, warmup=0.0, anneal_frac=0.0, dual_lr=1.0, floor=0.5)
    b.load_state_dict(state)
    area = torch.tensor(0.3)
    assert b(area, 5).item() == pytest.approx(a(area, 5).item()) == pytest.approx(0.5 * 0.2)
    state["mu"] += 1                                   # the loaded constraint holds its own copy
    assert b.multiplier.item() == pytest.approx(0.5)
    c = AreaConstraint(target=0.4, steps=10, warmup=0.0, anneal_frac=0.0, dual_lr=1.0, floor=0.5)
    c(torch.tensor(0.0), 5)
    c.update()                                         # below floor * target: nu = 0.2
    assert c.state_dict()["nu"].item() == pytest.approx(0.2) and c.multiplier.item() == pytest.approx(-0.2)


def test_the_floor_multiplier_pushes_a_closed_mask_open_in_the_penalty_in_the_areas_dtype():
    """With nu > 0 (the area fell under floor * target) the penalty is (mu - nu)(area - t): its gradient on the area
    is negative, so the optimiser opens the mask; it has the area's dtype (bf16 under autocast). Kills
    constraint.AreaConstraint.__call__ 8 (no cast) and 9 (mu + nu)."""
    from masklab.constraint import AreaConstraint
    c = AreaConstraint(target=0.4, steps=10, warmup=0.0, anneal_frac=0.0, dual_lr=1.0, floor=0.5)
    c(torch.tensor(0.0), 5)
    c.update()                                         # mu = 0, nu = 0.2
    area = torch.tensor(0.1, requires_grad=True)
    penalty = c(area, 5)
    penalty.backward()
    assert penalty.item() == pytest.approx(-0.2 * (0.1 - 0.4)) and area.grad.item() == pytest.approx(-0.2)
    assert c(torch.tensor(0.1, dtype=torch.bfloat16), 5).dtype == torch.bfloat16


@pytest.mark.parametrize("kwargs, ok", [
    ({"target": 0.0}, False), ({"target": 1.0}, True), ({"target": 1.01}, False), ({"steps": 1}, True),
    ({"steps": 0}, False), ({"floor": 0.0}, True), ({"floor": 1.0}, False), ({"floor": -0.1}, False),
    ({"dual_lr": 0.0}, True), ({"dual_lr": -1.0}, False), ({"anneal": "geometric"}, True),
    ({"anneal": "cosine"}, False)])
def test_an_area_constraint_accepts_exactly_the_ranges_it_states(kwargs, ok):
    """0 < target <= 1, steps >= 1, 0 <= floor < 1, dual_lr >= 0, a known anneal: each end on its side. Kills
    constraint.AreaConstraint.__init__ 13, 14 (a target of 0 accepted, of 1 refused)."""
    from masklab.constraint import AreaConstraint
    args = {"target": 0.1, "steps": 10, **kwargs}
    if ok:
        assert AreaConstraint(**args).goal == args["target"]
    else:
        with pytest.raises(ValueError, match="need 0 < target <= 1"):
            AreaConstraint(**args)


def test_an_area_constraints_defaults_are_the_default_methods_schedule():
    """Built without the schedule's arguments (as in the README's own-model example), the constraint anneals as the
    default Config does: target 1 through the first 10% of the steps, then linearly to the goal over the next 50%.
    Kills constraint.AreaConstraint.__init__ 1, 2 (the defaults of warmup and anneal_frac)."""
    from masklab.config import Config
    from masklab.constraint import AreaConstraint
    c, cfg = AreaConstraint(target=0.1, steps=100), Config()
    assert (c.warmup, c.anneal_frac, c.anneal, c.dual_lr, c.floor) == (cfg.warmup, cfg.anneal_frac, cfg.anneal,
                                                                        cfg.dual_lr, cfg.area_floor)
    assert [c.target(s) for s in (10, 35, 60, 100)] == pytest.approx([1.0, 0.55, 0.1, 0.1])


def test_an_area_constraints_update_before_any_penalty_changes_nothing():
    """update() before the first call has no area to step from: a no-op. Kills constraint.AreaConstraint.__init__ 32
    (the last area initialised to "" instead of None)."""
    from masklab.constraint import AreaConstraint
    c = AreaConstraint(target=0.1, steps=10)
    c.update()
    assert c.mu.item() == c.nu.item() == 0.0


def test_an_area_constraint_from_a_config_takes_every_one_of_its_fields():
    """Off-default values, so that a field dropped or passed in another's place shows. Kills
    constraint.AreaConstraint.from_config 13, 14 (the floor as the dual step; the floor dropped)."""
    from masklab.config import Config
    from masklab.constraint import AreaConstraint
    cfg = Config(area_target=0.2, steps=40, warmup=0.05, anneal_frac=0.4, anneal="geometric", dual_lr=0.3,
                 area_floor=0.25)
    c = AreaConstraint.from_config(cfg)
    assert (c.goal, c.steps, c.warmup, c.anneal_frac, c.anneal, c.dual_lr, c.floor) == (
        0.2, 40, 0.05, 0.4, "geometric", 0.3, 0.25)


def test_the_temperature_anneals_geometrically_from_its_start_to_its_end():
    """tau(step) = start * (end / start) ** progress: the start at step 1, the geometric mean halfway, the end at the
    last step, whatever the start (a start of 1 hides end * start). Kills losses.temperature_at 24."""
    from types import SimpleNamespace
    from masklab.losses import temperature_at
    cfg = SimpleNamespace(temperature=2.0, temperature_end=0.5, steps=3)
    assert [temperature_at(cfg, s) for s in (1, 2, 3)] == pytest.approx([2.0, 1.0, 0.5])


def test_an_overlay_dims_removed_pixels_and_tints_kept_ones():
    """Removed pixels keep 35% of their value; kept ones are mixed 55/45 with the tint. Kills images.overlay's
    survivors (dim, the tint's weight)."""
    from masklab.images import overlay
    x = torch.full((1, 1, 2), 200 / 255)                        # grey, one row of two pixels
    img = overlay(x, torch.tensor([[[0.0, 1.0]]]), colour=(255, 40, 40))
    removed, kept = img.getpixel((0, 0)), img.getpixel((1, 0))
    assert img.mode == "RGB" and removed == (70, 70, 70)       # 200 * 0.35
    assert kept == (224, 128, 128)                              # 200 * 0.55 + (255, 40, 40) * 0.45, truncated
    black = overlay(torch.zeros(1, 1, 2), torch.tensor([[[0.0, 1.0]]]), colour=(255, 40, 40))
    assert black.getpixel((0, 0)) == (0, 0, 0)                  # removed black stays black (third pass: overlay 48)


# --- third pass (the first full one, docs/MUTATION.md "Third pass") -------------------------------------------

def test_config_defaults_are_the_documented_method():
    """_f passes each field's default on: the default method is hard concrete under a 4.5% area target (the
    constraint, no extra mask loss). Kills config._f
    1 (every default None), which mutmut's own run cannot see: _f runs when masklab.config is imported, before a
    mutant is switched on (docs/MUTATION.md)."""
    from dataclasses import fields
    cfg = Config()
    assert all(getattr(cfg, f.name) is not None for f in fields(Config))
    assert (cfg.gate, cfg.mask_loss, cfg.constraint, cfg.area_target) == ("hard_concrete", "none", True, 0.045)


@pytest.mark.parametrize("spread, count, expected", [
    (16, 100, False), (17, 100, True),        # a channel spread must be over `tolerance` (16 of 255) ...
    (40, 50, False), (40, 51, True),          # ... on over `fraction` (2%) of the pixels: 50 of 2,500 is not
])
def test_is_colour_counts_pixels_whose_channels_differ_by_more_than_the_tolerance(spread, count, expected):
    """The colour check's two thresholds are strict, at their boundaries. Kills images.is_colour 1, 23, 24."""
    import numpy as np
    from PIL import Image

    from masklab.images import is_colour
    a = np.full((50, 50, 3), 100, dtype=np.uint8)               # 2,500 pixels: no thumbnailing
    a.reshape(-1, 3)[:count, 0] += spread
    assert is_colour(Image.fromarray(a)) is expected


def test_enlarge_by_default_brings_small_images_to_about_160_pixels_even_at_twice():
    """The default side is 160: a 7-pixel image is scaled 22 times (not 23, as 161 would), an 80-pixel one twice.
    Kills images.enlarge 1 and 19."""
    from PIL import Image

    from masklab.images import enlarge
    assert enlarge(Image.new("L", (7, 7))).size == (154, 154)
    assert enlarge(Image.new("L", (80, 40))).size == (160, 80)


def test_a_mask_results_histogram_bins_over_zero_to_one_whatever_its_values():
    """Bins span [0, 1], not the values' own range: a mask of 0.4s and 0.6s fills the two middle bins of four.
    Kills MaskResult.histogram 9, 10."""
    from masklab.images import MaskResult
    relaxed = torch.tensor([[[0.4, 0.4, 0.6, 0.6]]])
    r = MaskResult(torch.zeros(1, 1, 4), relaxed, (relaxed > 0.5).float(), torch.tensor([1.0]), 0.5)
    assert r.histogram(4).tolist() == [0.0, 0.5, 0.5, 0.0]


def test_run_ids_carry_the_real_date_and_time_and_strip_only_dashes(tmp_path):
    """The id starts with the local date and time as YYYYmmdd-HHMMSS (sortable); the name loses only leading and
    trailing dashes. Kills checkpoint.new_run_id 10, 13-16 (the other test fixes strftime's output, not its format)."""
    import re
    import time as clock

    from masklab.checkpoint import new_run_id
    before = clock.strftime("%Y%m%d-%H%M%S")
    run_id = new_run_id(Config(seed=2), "X ray X")
    after = clock.strftime("%Y%m%d-%H%M%S")
    assert re.fullmatch(r"\d{8}-\d{6}-X-ray-X-s2", run_id)
    assert before <= run_id[:15] <= after


def test_unique_dir_makes_missing_parents_and_says_when_no_name_is_free(tmp_path, monkeypatch):
    """Kills checkpoint.unique_dir 3, 5, 7 (parents) and 22 (the message)."""
    from pathlib import Path

    from masklab.checkpoint import CheckpointError, unique_dir
    assert unique_dir(tmp_path / "a" / "b", "r").is_dir()
    real = Path.mkdir

    def taken(self, *args, **kwargs):                      # every run folder name exists already
        if self.parent == tmp_path:
            raise FileExistsError(self)
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Path, "mkdir", taken)
    with pytest.raises(CheckpointError, match="cannot find a free folder name for r"):
        unique_dir(tmp_path, "r")


def test_top_k_threshold_sits_between_the_kth_and_next_score_and_below_all_when_all_are_kept():
    """Kills gates._top_k 31, 34 (the keep-all threshold), 46 (k + 2 scores asked of k + 1) and 73 (the midpoint
    of the (k-1)-th and (k+1)-th)."""
    from masklab.gates import _top_k
    scores = torch.tensor([4.0, 3.0, 2.0, 1.0]).view(1, 1, 1, 4)
    kept, threshold = _top_k(scores, 0.5)
    assert kept.view(-1).tolist() == [True, True, False, False] and threshold.item() == 2.5
    kept, threshold = _top_k(scores, 0.75)                          # k = n - 1
    assert kept.view(-1).tolist() == [True, True, True, False] and threshold.item() == 1.5
    kept, threshold = _top_k(scores, 1.0)
    assert kept.all() and threshold.item() == 0.0                   # one below the lowest score


def test_top_k_trains_on_the_logits_plus_logistic_noise_at_its_temperature():
    """While training, top-k's scores are l + logistic noise (the draw hard concrete makes from the generator), and
    its relaxation is stretch(sigmoid((scores - threshold) / temperature)). Kills gates.top_k 5 (l - noise),
    18 (x temperature) and 20 (no temperature while training)."""
    from masklab.gates import _logistic_noise, _stretch, _top_k, top_k
    logits = torch.randn(2, 1, 5, 5, generator=_gen(3))
    scores = logits + _logistic_noise(logits, _gen(7))
    kept, threshold = _top_k(scores, 0.4)
    hard = top_k(logits, 0.5, True, True, _gen(7), keep=0.4)
    assert torch.equal(hard.bool(), kept)
    soft = top_k(logits, 0.5, True, False, _gen(7), keep=0.4)
    assert torch.allclose(soft, _stretch(torch.sigmoid((scores - threshold) / 0.5)))


def test_top_k_relaxation_keeps_ties_on_their_side_of_one_half_in_float64_too():
    """A tie at the threshold: stretch(sigmoid(0)) is 0.5000000000000001 in float64, so the unkept side needs its
    clamp to 1/2 and the kept side sits on the next float above 1/2. Kills gates._top_k_relaxed 14, 25."""
    import numpy as np

    from masklab.gates import _top_k_relaxed
    for dtype in (torch.float32, torch.float64):
        m = _top_k_relaxed(torch.tensor([2.0, 1.0, 1.0, 0.0], dtype=dtype).view(1, 1, 1, 4), 2 / 3, keep=0.5)
        assert (m > 0.5).sum().item() == 2
        above = np.nextafter(np.array(0.5, dtype=np.float32 if dtype == torch.float32 else np.float64), 1)
        assert sorted(m.view(-1).tolist())[1:3] == [0.5, float(above)]


def test_a_mask_results_top_classes_are_three_by_default_rounded_to_four_places():
    """Inspect's table shows the three most probable classes, to 4 decimals. Kills MaskResult.top 1, 17."""
    from masklab.images import MaskResult
    probs = torch.tensor([0.1234567, 0.5, 0.2, 0.1765433, 0.0])
    r = MaskResult(torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), probs, 0.0)
    assert r.top(list("abcde")) == [{"class": "b", "probability": 0.5}, {"class": "c", "probability": 0.2},
                                    {"class": "d", "probability": 0.1765}]


@pytest.mark.parametrize("text, value", [("true", True), ("1", True), ("yes", True), (" YES ", True), ("True", True),
                                         ("false", False), ("0", False), ("no", False), ("No", False)])
def test_boolean_fields_read_every_word_they_document_in_any_case(text, value):
    """A URL, a CLI flag or a sweep axis may say true/1/yes or false/0/no. Kills config.parse_value 9-21."""
    from masklab.config import parse_value
    assert parse_value("constraint", text) is value


def test_an_unknown_preset_is_named_with_the_choices():
    """Kills config.preset 2-4 (the message)."""
    from masklab.config import PRESETS, ConfigError, preset
    with pytest.raises(ConfigError) as e:
        preset("nope")
    assert str(e.value) == f"unknown preset 'nope'; choose one of {', '.join(PRESETS)}"
    assert "unmasked, oracle-ink, " in str(e.value)


def test_an_image_at_its_own_size_is_scaled_to_the_pixel_limit_by_the_square_root():
    """Keep-size inference caps an image at MAX_INPUT_PIXELS by scaling both sides by sqrt(limit / pixels): four
    times the limit gives half the side. Kills images.to_tensor 47, 50."""
    from PIL import Image

    from masklab.images import MAX_INPUT_PIXELS, to_tensor
    side = int(2 * MAX_INPUT_PIXELS ** 0.5)
    assert to_tensor(Image.new("L", (side, side), 128), 1, None).shape == (1, 1, side // 2, side // 2)
    assert to_tensor(Image.new("L", (30, 20), 128), 1, None).shape == (1, 1, 20, 30)          # small: as it is


def _png(size, mode="L", fmt="PNG") -> bytes:
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, format=fmt)
    return buffer.getvalue()


def test_open_image_reads_paths_bytes_and_file_objects_and_names_the_file_in_its_errors(tmp_path):
    """Kills images.open_image 1, 2 (the default name), 7 (file objects), 9, 10 (an unreadable path's message)."""
    import io

    from masklab.images import ImageError, open_image
    assert open_image(io.BytesIO(_png((3, 2)))).size == (3, 2)
    with pytest.raises(ImageError) as e:
        open_image(b"")
    assert str(e.value) == "image: the file is empty"
    with pytest.raises(ImageError) as e:
        open_image(tmp_path / "missing.png", "missing.png")
    assert str(e.value) == "missing.png: cannot read the file (No such file or directory)"


def test_open_image_limits_are_inclusive_and_their_messages_exact(monkeypatch):
    """A file of exactly MAX_BYTES and an image of exactly MAX_PIXELS pass; past them the message gives sizes in
    whole MB and megapixels. Kills images.open_image 13, 15-22 (bytes) and 30, 32-34, 36 (pixels)."""
    from masklab import images
    from masklab.images import ImageError, open_image
    monkeypatch.setattr(images, "MAX_BYTES", 3 * 2 ** 20)
    with pytest.raises(ImageError, match="not an image"):           # at the limit: read, then not an image
        open_image(b"x" * (3 * 2 ** 20))
    with pytest.raises(ImageError) as e:
        open_image(b"x" * (3 * 2 ** 20 + 2 ** 19))
    assert str(e.value) == "image: 4 MB is over the 3 MB limit"          # 3.5 MB shown as 4
    monkeypatch.setattr(images, "MAX_PIXELS", 1_500_000)
    assert open_image(_png((1500, 1000))).size == (1500, 1000)
    with pytest.raises(ImageError) as e:
        open_image(_png((3500, 1000)))
    assert str(e.value) == "image: 3500x1000 is 4 megapixels, over the 2 megapixel limit"   # 3.5 and 1.5, rounded


def test_open_image_decodes_a_jpeg_at_a_reduced_scale_only_when_a_draft_size_is_asked():
    """Kills images.open_image 39-45 (the draft's condition and arguments)."""
    from masklab.images import open_image
    jpeg, png = _png((400, 400), fmt="JPEG"), _png((400, 400))
    assert open_image(jpeg, draft=(50, 50)).size == (50, 50)           # 1/8 still covers 50 x 50
    assert open_image(jpeg).size == (400, 400)
    assert open_image(png, draft=(50, 50)).size == (400, 400)          # PNG has no draft mode


def test_to_tensor_keeps_a_side_of_one_pixel_and_the_images_values():
    """Resizing keeps at least one pixel a side (a 100 x 1 strip into 10 x 10 is 10 x 1) and the values in [0, 1]
    where they were: black stays 0, white 1. Kills images.to_tensor 56, 87."""
    import numpy as np
    from PIL import Image

    from masklab.images import to_tensor
    assert to_tensor(Image.new("L", (100, 1)), 1, (10, 10)).shape == (1, 1, 1, 10)
    half = np.zeros((8, 8), dtype=np.uint8)
    half[:, 4:] = 255
    x = to_tensor(Image.fromarray(half), 1, (4, 4))
    assert x[..., 0].max().item() == 0.0 and x[..., -1].min().item() == 1.0


def _reopened(img, **save) -> "Image.Image":
    import io

    from PIL import Image
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", **save)
    return Image.open(io.BytesIO(buffer.getvalue()))


def _transparent_cases():
    from PIL import Image
    la = Image.new("LA", (3, 1))
    la.putdata([(255, 255), (255, 128), (255, 0)])                 # white: opaque, half, fully transparent
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(255, 255, 255, 255), (255, 255, 255, 128), (255, 255, 255, 0)])
    palette = Image.new("P", (3, 1))
    palette.putpalette([255, 255, 255, 10, 10, 10] + [0] * 762)
    palette.putdata([0, 1, 0])
    pa = Image.new("PA", (3, 1))
    pa.putpalette([255, 255, 255, 10, 10, 10] + [0] * 762)
    pa.putdata([(0, 0), (1, 255), (0, 0)])                         # white, transparent; dark gray, opaque
    return {
        "LA": (la, [255, 128, 0]),
        "RGBA": (rgba, [255, 128, 0]),
        "P, white transparent": (_reopened(palette, transparency=0), [0, 10, 0]),
        "P, no transparency": (_reopened(palette), [255, 10, 255]),
        "RGB, tRNS white": (_reopened(Image.new("RGB", (3, 1), (255, 255, 255)), transparency=(255, 255, 255)),
                            [0, 0, 0]),
        "L, tRNS 200": (_reopened(Image.new("L", (3, 1), 200), transparency=200), [0, 0, 0]),
        "PA": (pa, [0, 10, 0]),
    }


@pytest.mark.parametrize("case", list(_transparent_cases()))
def test_every_kind_of_transparency_is_composited_on_black(case):
    """Transparent pixels come out black (as masked pixels are), half-transparent white mid-gray, in L and RGB,
    whichever way the file says it: an alpha channel, a palette's transparent index, or an RGB or gray PNG's
    tRNS colour. Kills images.to_mode 5-15 (which modes), 17 (no RGBA), 23, 26, 29-32 (the black background)."""
    import numpy as np

    from masklab.images import to_mode
    img, expected = _transparent_cases()[case]
    gray = np.asarray(to_mode(img, 1)).reshape(-1).tolist()
    assert [abs(g - e) <= 1 for g, e in zip(gray, expected)] == [True] * 3, gray
    rgb = np.asarray(to_mode(img, 3)).reshape(-1, 3)
    assert (rgb.max(axis=1) - rgb.min(axis=1)).max() == 0 and rgb[:, 0].tolist() == gray   # gray stays gray


@pytest.mark.parametrize("error, shown", [(OSError(), "OSError"), (ValueError("x" * 200), "x" * 120),
                                          (EOFError("cut short"), "cut short")])
def test_a_damaged_image_says_what_the_decoder_said_or_at_least_its_kind(monkeypatch, error, shown):
    """The decoder's message, cut at 120 characters, or the exception's type when it says nothing. Kills
    images.open_image 51-54."""
    from PIL import Image

    from masklab.images import ImageError, open_image

    def broken(*args, **kwargs):
        raise error
    monkeypatch.setattr(Image, "open", broken)
    with pytest.raises(ImageError) as e:
        open_image(b"bytes", "scan.png")
    assert str(e.value) == f"scan.png: damaged or truncated image ({shown})"


# --- fifth pass -------------------------------------------------------------------------------------------

def _small_model(**over):
    """A seeded 4-channel model for 1-channel images of 10 classes, in eval mode, its classifier's head off its
    near-zero start (real logits, a real occlusion map). The logit gain is 1 (noise_end 1, the default until
    2026-12-01), as when these tests were written."""
    from masklab.models import build_model
    torch.manual_seed(0)
    model = build_model(Config(width=4, classifier_width=4, **{"noise_end": 1.0, **over}), 1, 10).eval()
    torch.nn.init.normal_(model.classifier.head.weight, std=0.1)
    return model


@pytest.mark.parametrize("kind", ["straight_through", "binary_concrete"])
def test_a_gates_deterministic_mask_takes_its_gradient_at_the_temperature_it_is_given(kind):
    """The deterministic rows of a batch (models._mix) are 0/1 at any temperature, but their straight-through
    gradient is the annealed one the step passes in, not the gate's own (hard concrete's and top-k's eval
    backward does not depend on it). Kills gates.MaskGate.deterministic 3."""
    from masklab.gates import MaskGate
    gate = MaskGate(kind)

    def grad(temperature):
        logits = torch.linspace(-3, 3, 16).reshape(1, 1, 4, 4).requires_grad_()
        gate.deterministic(logits, temperature).sum().backward()
        return logits.grad

    def direct(temperature):
        logits = torch.linspace(-3, 3, 16).reshape(1, 1, 4, 4).requires_grad_()
        GATES[kind](logits, temperature, False, gate.hard).sum().backward()
        return logits.grad

    assert gate.temperature not in (0.2, 2.0)
    assert torch.allclose(grad(0.2), direct(0.2)) and torch.allclose(grad(2.0), direct(2.0))
    assert not torch.allclose(grad(0.2), grad(2.0))


def test_the_teacher_keeps_one_pixel_per_image_when_its_fraction_rounds_below_one():
    """A teacher target below half a pixel still asks for the single best pixel of each image (k = 1), not two.
    Kills losses.teacher_loss 9."""
    import torch.nn.functional as F

    from masklab.losses import teacher_loss
    score = torch.rand(3, 1, 5, 5, generator=_gen(1))
    logits = torch.randn(3, 1, 5, 5, generator=_gen(2))
    best = torch.zeros(3, 25).scatter_(1, score.flatten(1).argmax(1, keepdim=True), 1.0).view_as(logits)
    assert teacher_loss(score, logits, 0.01) == pytest.approx(F.binary_cross_entropy_with_logits(logits, best).item())
    two = torch.zeros(3, 25).scatter_(1, score.flatten(1).topk(2, dim=1).indices, 1.0).view_as(logits)
    assert teacher_loss(score, logits, 2 / 25) == pytest.approx(F.binary_cross_entropy_with_logits(logits, two).item())


@pytest.mark.parametrize("batch", [3, 10])
def test_the_occlusion_term_teaches_the_first_eight_images_of_a_batch_or_all_of_a_smaller_one(batch):
    """occlusion_loss is the teacher loss of the occlusion map over the first min(8, batch) images: not over as
    many images as the batch has channels. Kills losses.occlusion_loss 6."""
    from masklab.losses import OCCLUDED_IMAGES, occlusion_loss, occlusion_map, teacher_loss
    model = _small_model()
    x, y = torch.rand(batch, 1, 16, 16, generator=_gen(3)), torch.arange(batch) % 10
    logits = torch.randn(batch, 1, 16, 16, generator=_gen(4))
    k = min(OCCLUDED_IMAGES, batch)
    expected = teacher_loss(occlusion_map(model, x[:k], y[:k]), logits[:k], 0.25)
    assert occlusion_loss(model, x, y, logits, 0.25).item() == pytest.approx(expected.item())
    assert k > 1 and occlusion_loss(model, x, y, logits, 0.25).item() != pytest.approx(
        teacher_loss(occlusion_map(model, x[:1], y[:1]), logits[:1], 0.25).item())


def test_clean_turns_every_non_finite_float_into_none_and_keeps_the_rest():
    """A metric that is NaN or infinite becomes null in summary.json (JSON has no NaN); finite floats, ints, strings
    and None stay as they are. Kills metrics.clean 1."""
    from masklab.metrics import clean
    d = {"nan": float("nan"), "inf": float("inf"), "-inf": -float("inf"), "x": 0.25, "n": 3, "s": "nan", "none": None}
    assert clean(d) == {"nan": None, "inf": None, "-inf": None, "x": 0.25, "n": 3, "s": "nan", "none": None}


def test_write_atomic_renames_a_hidden_temp_file_of_the_same_folder_readable_by_all(tmp_path, monkeypatch):
    """The temp file lies in the target's own folder (a rename within one file system is atomic), hidden and named
    after the target (.NAME.*.tmp: listings and zips of a run folder skip it, a crash leaves a file that says what
    it was), and the result is rw-r--r--, not mkstemp's 0600. Kills checkpoint.write_atomic 4-11, 24."""
    import os
    import re
    import stat

    from masklab import checkpoint
    renamed = []
    real = os.replace
    monkeypatch.setattr(checkpoint.os, "replace", lambda src, dst: (renamed.append(src), real(src, dst)))
    target = tmp_path / "run" / "summary.json"
    target.parent.mkdir()
    checkpoint.write_atomic(target, b"{}\n")
    assert target.read_bytes() == b"{}\n" and len(renamed) == 1
    tmp = os.path.abspath(renamed[0])
    assert os.path.dirname(tmp) == str(target.parent)
    assert re.fullmatch(r"\.summary\.json\.[^/]+\.tmp", os.path.basename(tmp))
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(target.parent) == ["summary.json"]


def test_a_failed_write_raises_its_own_error_even_when_its_temp_file_is_gone(tmp_path, monkeypatch):
    """If the rename fails after the temp file has vanished (another process cleaned the folder), the caller sees
    the rename's error, not a FileNotFoundError from the cleanup. Kills checkpoint.write_atomic 29, 31."""
    import os

    from masklab import checkpoint

    def failing(src, dst):
        os.unlink(src)
        raise PermissionError("read-only folder")
    monkeypatch.setattr(checkpoint.os, "replace", failing)
    with pytest.raises(PermissionError, match="read-only folder"):
        checkpoint.write_atomic(tmp_path / "model.pt", b"x")


def test_save_run_makes_missing_parents_writes_into_an_existing_folder_and_keeps_its_files_readable(tmp_path):
    """A run folder is made with its parents, or written into when it exists (the app and the CLI make it before
    training starts); summary.json is indented by two spaces and metrics.csv has plain newlines, as the committed
    run folders are. Kills checkpoint.save_run 3-8, 55, 57, 58 and metrics_csv 8, 11."""
    import json

    from masklab.checkpoint import read_metrics, save_run
    from masklab.models import build_model
    cfg = Config(width=4, classifier_width=4)
    model = build_model(cfg, 1, 10)
    records = [{"step": 0.0, "loss": 2.5}, {"step": 25.0, "loss": 1.25}]
    summary = {"status": "done", "metrics": {"accuracy_hard": 0.5}}
    deep = tmp_path / "a" / "b" / "run"
    assert save_run(deep, cfg, model, records, summary) == deep
    again = tmp_path / "existing"
    again.mkdir()
    save_run(again, cfg, model, records, summary)
    for folder in (deep, again):
        assert (folder / "summary.json").read_text() == json.dumps(summary, indent=2) + "\n"
        assert (folder / "metrics.csv").read_bytes() == b"step,loss\n0.0,2.5\n25.0,1.25\n"
        assert read_metrics(folder) == records


class _Marker:
    """A pickle that, if unpickled by the full unpickler, creates the file named by its argument."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_that_runs_code_is_refused_even_where_the_environment_asks_torch_for_full_pickles(tmp_path,
                                                                                                    monkeypatch):
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 makes torch.load unpickle anything when weights_only is not passed; a
    run folder's model.pt is read with weights_only=True explicitly, so a foreign file still runs nothing. Kills
    checkpoint.load_state 4, 7."""
    import pickle

    from masklab.checkpoint import CheckpointError, load_state
    marker = tmp_path / "executed"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"w": _Marker(marker)}))
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(CheckpointError, match="nothing in the file was executed"):
        load_state(path)
    assert not marker.exists()


@pytest.mark.parametrize("error, reason", [(RuntimeError("bad magic number\nsecond line"), "(bad magic number)"),
                                           (EOFError(), "(EOFError)"), (ValueError("  \n "), "(ValueError)")])
def test_an_unreadable_state_says_the_loaders_first_line_or_its_kind(tmp_path, monkeypatch, error, reason):
    """The refusal names the first line of torch's message, or the exception's type where it has none. Kills
    checkpoint.load_state 13-15."""
    from masklab.checkpoint import CheckpointError, load_state

    def failing(*args, **kwargs):
        raise error
    monkeypatch.setattr(torch, "load", failing)
    with pytest.raises(CheckpointError) as e:
        load_state(tmp_path / "model.pt")
    assert f"refused or unreadable as plain weights {reason}." in str(e.value)


def test_a_mask_is_collapsed_strictly_below_half_a_percent_or_strictly_above_95_percent():
    """Kills metrics.collapsed 1-3 (`and` for `or`, `<=` and `>=` at the bounds)."""
    from masklab.metrics import COLLAPSE_HIGH, COLLAPSE_LOW, collapsed
    assert (COLLAPSE_LOW, COLLAPSE_HIGH) == (0.005, 0.95)
    assert [collapsed(a) for a in (0.0, 0.0049, 0.005, 0.05, 0.95, 0.951, 1.0)] == \
        [True, True, False, False, False, True, True]


def test_an_oracle_is_evaluated_on_its_own_kind_of_true_mask_and_a_learned_mask_on_none():
    """truth_of: the ink or the box for an oracle model, None for a model without an `oracle` attribute or with
    "none". Kills metrics.truth_of 1, 3, 6, 14, 18."""
    from masklab.data import TestSet
    from masklab.metrics import box_masks, truth_of
    x = torch.rand(2, 1, 6, 6, generator=_gen(5))
    ink = torch.rand(2, 1, 6, 6, generator=_gen(6)) > 0.5
    boxes = torch.tensor([[0.0, 0.0, 3.0, 3.0], [2.0, 1.0, 6.0, 5.0]])
    test = TestSet(x, torch.tensor([0, 1]), boxes, ink)
    assert torch.equal(truth_of(SimpleNamespace(oracle="ink"), test), ink.float())
    assert torch.equal(truth_of(SimpleNamespace(oracle="box"), test), box_masks(boxes, x.shape).float())
    assert truth_of(SimpleNamespace(oracle="none"), test) is None and truth_of(SimpleNamespace(), test) is None


def test_evaluate_counts_the_correct_predictions_of_each_view():
    """accuracy_full / soft / hard are the fractions of test images whose argmax is the label: 7 of 10 labels set to
    the prediction and 3 to another class give exactly 0.7. Kills metrics.evaluate 23."""
    from masklab.data import TestSet
    from masklab.metrics import evaluate, predict
    model = _small_model()
    x = torch.rand(10, 1, 16, 16, generator=_gen(7))
    _, _, hard, soft, full = predict(model, x, 0.5, 0.5, truth=None)
    result = {}
    for name, logits in (("accuracy_full", full), ("accuracy_soft", soft), ("accuracy_hard", hard)):
        y = logits.argmax(1).clone()
        y[7:] = (y[7:] + 1) % 10
        result[name] = evaluate(model, TestSet(x, y), 0.5)[name]
    assert result == {"accuracy_full": pytest.approx(0.7), "accuracy_soft": pytest.approx(0.7),
                      "accuracy_hard": pytest.approx(0.7)}


def test_an_oracle_is_evaluated_through_its_true_mask_and_a_pixel_is_kept_strictly_above_the_threshold():
    """evaluate hands an oracle model its test set's true mask (without it predict refuses), so its area is the
    ink's; m_eval is exactly 0 or 1 there, and at threshold 0 only the ink is kept (strictly above). Kills
    metrics.evaluate 7, 13, 14 and 18."""
    from masklab.config import preset
    from masklab.data import TestSet
    from masklab.metrics import evaluate
    from masklab.models import build_model
    model = build_model(preset("oracle-ink", width=4, classifier_width=4), 1, 10)
    x = torch.rand(4, 1, 8, 8, generator=_gen(8))
    ink = torch.rand(4, 1, 8, 8, generator=_gen(9)) > 0.7
    test = TestSet(x, torch.arange(4), None, ink)
    assert evaluate(model, test, 1.0)["area"] == pytest.approx(ink.float().mean().item())
    assert evaluate(model, test, 1.0, threshold=0.0)["area"] == pytest.approx(ink.float().mean().item())


def test_evaluate_masks_at_the_temperature_and_threshold_it_is_given():
    """A binary-concrete mask is sigmoid(l / temperature) at eval: evaluate's bimodality and hard-mask accuracy are
    predict's at the same temperature and threshold, not at predict's defaults. Kills metrics.evaluate 5, 10-12."""
    from masklab.data import TestSet
    from masklab.metrics import bimodality, evaluate, predict
    model = _small_model(gate="binary_concrete")
    x = torch.rand(12, 1, 16, 16, generator=_gen(10))
    m, _, hard, _, _ = predict(model, x, 5.0, 0.65, truth=None)
    _, _, hard_default, _, _ = predict(model, x, 5.0, truth=None)
    y = hard.argmax(1)
    assert not torch.equal(hard_default.argmax(1), y)                      # the threshold changes predictions
    result = evaluate(model, TestSet(x, y), 5.0, threshold=0.65)
    assert result["accuracy_hard"] == 1.0
    assert result["bimodality"] == pytest.approx(bimodality(m))
    assert result["bimodality"] != pytest.approx(bimodality(predict(model, x, 0.65, truth=None)[0]))


# --- sixth pass (the rest of the fifth's unchecked mutants, docs/MUTATION.md "Sixth pass") ------------------

def test_config_json_is_one_field_a_line_indented_by_two_spaces():
    """config.json is read by people (a run's settings, diffed between runs): one field a line, two spaces in,
    as json.dumps(indent=2) writes it. Kills config.Config.to_json 2, 4 and 5 (no indent, indent 3)."""
    import json
    cfg = Config(alpha=0.8, data="shapes")
    lines = cfg.to_json().splitlines()
    assert lines[0] == "{" and lines[-1] == "}" and len(lines) == len(cfg.to_dict()) + 2
    assert '  "alpha": 0.8,' in lines and '  "data": "shapes",' in lines
    assert all(line.startswith('  "') and not line.startswith('   ') for line in lines[1:-1])
    assert json.loads(cfg.to_json()) == cfg.to_dict()


def test_a_one_pixel_box_and_ink_kept_exactly_score_one():
    """The union and the ink are floored at 1 pixel only to avoid 0/0: a mask that keeps exactly a one-pixel box
    has IoU 1 and keeps all of one-pixel ink, and one that keeps nothing of them scores 0. Kills
    metrics.localisation 28 and 57 (floors of 2 pixels)."""
    from masklab.metrics import localisation
    boxes = torch.tensor([[2.0, 3.0, 3.0, 4.0]])                     # x0, y0, x1, y1: the pixel (row 3, col 2)
    hard = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    hard[0, 0, 3, 2] = True
    score = hard.float()
    assert localisation(score, hard, boxes, hard.clone()) == pytest.approx(
        {"precision_in_box": 1.0, "iou_box": 1.0, "pointing_game": 1.0, "ink_recall": 1.0})
    empty = localisation(score, torch.zeros_like(hard), boxes, hard.clone())
    assert empty["iou_box"] == 0.0 and empty["ink_recall"] == 0.0


def test_a_float_image_is_rounded_to_8_bits_in_double_precision():
    """A float ("F") picture is brought to 0..255 in float64: the float32 nearest to 128.5/255 lies just under
    it, so its pixel is 128 (in float32 arithmetic x * 255 + 0.5 rounds up to 129). Kills images.to_mode 57, 59
    (the pixels read in the image's own float32)."""
    import numpy as np
    from PIL import Image
    from masklab.images import to_mode
    values = ((np.arange(249, 255, dtype=np.float64) + 0.5) / 255).astype(np.float32)[None]
    values = np.concatenate([values, np.float32([[128.5 / 255, 0.0, 1.0, 0.5, 0.25, 0.75]])])
    got = np.asarray(to_mode(Image.fromarray(values, "F"), 1))
    assert got.tolist() == np.floor(values.astype(np.float64) * 255 + 0.5).clip(0, 255).astype(np.uint8).tolist()
    assert got[1, 0] == 128


def test_a_box_keeps_the_pixel_centres_on_its_top_and_left_edges_not_on_its_bottom_and_right():
    """box_masks takes a pixel when its centre lies in [x0, x1) x [y0, y1): a box whose edges fall on pixel centres
    (a box scaled with its image) keeps the row and column on its top-left edges and not those on its bottom-right.
    Kills metrics.box_masks 31 (ys > y0)."""
    from masklab.metrics import box_masks
    inside = box_masks(torch.tensor([[1.5, 2.5, 3.5, 4.5]]), (6, 6))[0, 0]
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[2:4, 1:3] = True
    assert torch.equal(inside, expected)


def test_a_mask_gates_forward_uses_the_temperature_and_generator_it_is_given():
    """MaskGate(logits, temperature, generator): the annealed temperature passed in is the one used (a soft
    binary-concrete sample is sigmoid((l + noise) / T)), and the noise comes from the generator passed in, so equal
    generators give equal samples and the global RNG is neither used nor advanced. Kills gates.MaskGate.forward 3,
    9, 14."""
    from masklab.gates import MaskGate
    logits = torch.linspace(-2, 2, 16).reshape(1, 1, 4, 4)
    soft = MaskGate("binary_concrete", hard=False, temperature=2 / 3).train()
    noise = _logistic_noise(logits, torch.Generator().manual_seed(4))
    assert torch.allclose(soft(logits, 0.25, torch.Generator().manual_seed(4)), torch.sigmoid((logits + noise) / 0.25))
    gate = MaskGate("hard_concrete", hard=True).train()
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = gate(logits, 2 / 3, torch.Generator().manual_seed(1))
    b = gate(logits, 2 / 3, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), before)
    assert not torch.equal(a, gate(logits, 2 / 3, torch.Generator().manual_seed(2)))


def test_evaluate_without_boxes_names_every_metric_and_leaves_localisation_empty():
    """On a test set without boxes evaluate still returns every metric the summaries and the CLI list, with the
    localisation ones None. Kills metrics.evaluate 49-51 (iou_box, ink_recall renamed)."""
    from masklab.data import TestSet
    from masklab.metrics import METRIC_NAMES, evaluate
    result = evaluate(_small_model(), TestSet(torch.rand(4, 1, 8, 8, generator=_gen(3)), torch.arange(4)), 2 / 3)
    assert set(result) == set(METRIC_NAMES)
    assert [result[k] for k in ("precision_in_box", "iou_box", "ink_recall", "pointing_game")] == [None] * 4


def test_checkpoint_errors_say_which_file_and_what_a_run_folder_holds(tmp_path):
    """A path that is not a folder is refused with the files a run folder has; a summary that is not JSON with
    its path and the parser's reason. Kills checkpoint.load_run 6-8 and read_summary 9."""
    from masklab.checkpoint import FILES, CheckpointError, load_run, read_summary
    not_a_folder = tmp_path / "model.pt"
    not_a_folder.write_bytes(b"x")
    with pytest.raises(CheckpointError) as e:
        load_run(not_a_folder)
    assert str(e.value) == f"{not_a_folder}: not a folder (expected a run folder with {', '.join(FILES)})"
    assert "config.json, " in str(e.value)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"summary\.json: not valid JSON \(Expecting property name"):
        read_summary(tmp_path)


def test_a_refusal_quotes_at_most_200_characters_of_the_loaders_reason(tmp_path, monkeypatch):
    """The first line of the loader's reason is quoted up to 200 characters and cut there (a foreign file can make
    torch's message as long as it likes). Kills checkpoint.load_state 20."""
    import re
    from masklab import checkpoint
    long = "r" * 150 + "s" * 150

    def refuse(*args, **kwargs):
        raise RuntimeError(long + "\nsecond line")
    monkeypatch.setattr(checkpoint.torch, "load", refuse)
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(checkpoint.CheckpointError) as e:
        checkpoint.load_state(tmp_path / "model.pt")
    assert re.search(r"plain weights \((.*)\)\. Only", str(e.value)).group(1) == long[:200]


def test_a_dict_of_names_to_numbers_is_not_a_state_dict(tmp_path):
    """Every value must be a tensor and every key a string: {"w": 3} and {3: tensor} are refused, not loaded
    into a model. Kills checkpoint.load_state 25 (and for or)."""
    from masklab.checkpoint import CheckpointError, load_state
    for i, bad in enumerate(({"w": 3}, {3: torch.zeros(1)})):
        path = tmp_path / f"{i}.pt"
        torch.save(bad, path)
        with pytest.raises(CheckpointError, match="not a state_dict"):
            load_state(path)
    torch.save({"w": torch.zeros(1)}, tmp_path / "ok.pt")
    assert list(load_state(tmp_path / "ok.pt")) == ["w"]


def test_a_mask_gates_area_is_taken_at_the_temperature_it_is_given():
    """Louizos' expected L0, P(z > 0), depends on the temperature: MaskGate.area uses the one passed in (the
    annealed one), not its own. Kills gates.MaskGate.area 3."""
    from masklab.gates import MaskGate
    logits = torch.linspace(-3, 3, 16).reshape(1, 1, 4, 4)
    gate = MaskGate("hard_concrete", seen_area=False)
    mask = torch.ones_like(logits)
    assert torch.equal(gate.area(logits, mask, 0.2), area_estimate("hard_concrete", logits, mask, 0.2))
    assert not torch.allclose(gate.area(logits, mask, 0.2), gate.area(logits, mask))


def test_bimodality_counts_values_exactly_at_001_and_099():
    """A value within 0.01 of 0 or of 1, the bounds included, counts as binary. Kills metrics.bimodality 2, 4."""
    from masklab.metrics import bimodality
    assert bimodality(torch.tensor([0.0, 0.01, 0.5, 0.99, 1.0])) == pytest.approx(0.8)
    assert bimodality(torch.tensor([0.0101, 0.9899])) == 0.0


def _saved_run(tmp_path, state_edit=None, summary_edit=None):
    from masklab.checkpoint import save_run
    from masklab.models import build_model
    cfg = Config(width=4, classifier_width=4)
    model = build_model(cfg, 1, 10)
    summary = {"status": "done", "data": {"channels": 1, "classes": 10}, "metrics": {}}
    run_dir = save_run(tmp_path / "run", cfg, model, [], summary_edit(summary) if summary_edit else summary)
    if state_edit:
        state = dict(model.state_dict())
        state_edit(state)
        torch.save(state, run_dir / "model.pt")
    return run_dir


def test_load_run_says_which_file_is_wrong_and_how(tmp_path):
    """Each refusal of load_run names the file at fault and quotes what is wrong: a summary without the data's
    shape; weights that do not fit (the first three lines of torch's reason, joined by '; '); non-finite weights
    (the first three such tensors). Kills checkpoint.load_run 28, 29, 44, 47, 48, 50, 51, 58, 59, 61, 62."""
    from masklab.checkpoint import CheckpointError, load_run
    from masklab.models import build_model
    run = _saved_run(tmp_path, summary_edit=lambda s: {**s, "data": {"channels": 1}})
    with pytest.raises(CheckpointError) as e:
        load_run(run)
    assert str(e.value) == f"{run / 'summary.json'}: lacks data.channels / data.classes"

    def misfit(state):
        state["extra"] = torch.zeros(1)
        del state["classifier.head.bias"]
        state["classifier.head.weight"] = torch.zeros(3, 3)
        state["attention.body.0.weight"] = torch.zeros(1)
    run = _saved_run(tmp_path / "misfit", state_edit=misfit)
    state = torch.load(run / "model.pt", weights_only=True)
    with pytest.raises(RuntimeError) as torch_error:                 # torch's own words, to compare with
        build_model(Config(width=4, classifier_width=4), 1, 10).load_state_dict(state)
    lines = [line.strip() for line in str(torch_error.value).strip().splitlines()]
    assert len(lines) > 3
    with pytest.raises(CheckpointError) as e:
        load_run(run)
    assert str(e.value) == (f"{run / 'model.pt'}: weights do not fit the model of config.json "
                            f"({'; '.join(lines[:3])})")

    def poison(state):
        for name in list(state)[:4]:
            state[name] = torch.full_like(state[name], float("nan"))
    run = _saved_run(tmp_path / "nan", state_edit=poison)
    with pytest.raises(CheckpointError) as e:
        load_run(run)
    first = [k for k in torch.load(run / "model.pt", weights_only=True)][:3]
    assert str(e.value) == f"{run / 'model.pt'}: non-finite weights in {', '.join(first)}"


def test_top_k_reports_its_expected_area_from_the_logits_not_its_exact_mask():
    """A top-k mask keeps exactly its fraction, so its area estimate is the logits' mean sigmoid (what the records'
    area_expected and the l0/l1 penalties see move), not the mask's mean. Kills gates.area_estimate 13, 14."""
    logits = torch.linspace(-3, 1, 16).reshape(1, 1, 4, 4)
    mask = GATES["top_k"](logits, 2 / 3, False, True, None, keep=0.5)
    assert mask.mean() == 0.5
    assert torch.equal(area_estimate("top_k", logits, mask, 2 / 3), torch.sigmoid(logits).mean())


def test_config_json_that_is_not_an_object_and_values_of_the_wrong_type_are_refused_by_name():
    """The refusals a user sees for a config file: JSON that is not an object says what it must be; a value of
    the wrong type says the field, the type expected and the type and value found. Kills config.Config.from_json
    5-8 and config._coerce 8 (a string for a float passed on to __post_init__, which words it otherwise)."""
    from masklab.config import ConfigError
    with pytest.raises(ConfigError) as e:
        Config.from_json("[1, 2]")
    assert str(e.value) == "config JSON must be an object of field: value"
    for given, message in (({"alpha": "0.5"}, "alpha: expected float, got str '0.5'"),
                           ({"steps": True}, "steps: expected int, got bool True"),
                           ({"data": 3}, "data: expected str, got int 3")):
        with pytest.raises(ConfigError) as e:
            Config.from_dict(given)
        assert str(e.value) == message


def test_a_mask_gate_by_default_is_hard_concrete_with_the_unclamped_backward_and_the_seen_area():
    """MaskGate()'s defaults are the default method's gate; seen_area holds only for a hard gate, as asked; an
    unknown kind is refused with the list of gates. Kills gates.MaskGate.__init__ 1, 2, 4, 5, 9, 22."""
    from masklab.gates import MaskGate
    gate = MaskGate()
    assert (gate.kind, gate.hard, gate.options, gate.seen_area) == ("hard_concrete", True,
                                                                    {"clamp_backward": False}, True)
    assert MaskGate(seen_area=False).seen_area is False and MaskGate(hard=False).seen_area is False
    with pytest.raises(ValueError) as e:
        MaskGate("nope")
    assert str(e.value) == f"unknown gate 'nope': one of {', '.join(GATES)}"


def test_an_int_for_a_float_field_is_stored_as_a_float_and_a_string_is_a_config_error():
    """Config(beta=1) stores 1.0 (so its JSON, URL and CLI forms agree with Config(beta=1.0)); a string for a
    float field is a ConfigError that names the field, never a raw ValueError from float(). Kills
    config.Config.__post_init__ 1, 7, 9-12."""
    from masklab.config import ConfigError
    cfg = Config(beta=1, area_target=1)
    assert type(cfg.beta) is float and type(cfg.area_target) is float
    assert '"beta": 1.0' in cfg.to_json() and cfg.to_query()["beta"] == Config(beta=1.0).to_query()["beta"]
    assert type(Config(steps=7).steps) is int
    with pytest.raises(ConfigError, match="alpha: expected float, got 'x'"):
        Config(alpha="x")


def test_a_knob_with_an_off_value_still_refuses_values_outside_its_range():
    """image_size is 0 (off: native size) or in [8, 1024]: 0 is accepted, 4 and 2048 are not. Kills
    config.Knob.admits 1 (off set: everything admitted)."""
    from masklab.config import ConfigError
    assert Config(image_size=0).image_size == 0 and Config(image_size=8).image_size == 8
    for bad in (4, 2048):
        with pytest.raises(ConfigError, match="image_size"):
            Config(image_size=bad)


def test_unknown_config_keys_are_refused_with_the_known_ones_listed():
    """Kills config._check_known 8 (the known fields joined otherwise)."""
    from masklab.config import FIELD_NAMES, ConfigError
    with pytest.raises(ConfigError) as e:
        Config.from_dict({"alpah": 0.5, "zeta": 1})
    assert str(e.value) == f"unknown config keys: ['alpah', 'zeta'] (known: {', '.join(FIELD_NAMES)})"


def test_a_config_built_directly_names_each_wrong_value_once_joined_by_semicolons():
    """Config(...) built in code (not through from_dict) is checked by its own validation: a bool or a string for a
    float, an int for a string, NaN, a choice not offered, each named once, all of them in one message joined by
    '; ', and no range or cross-field message about a value already refused (NaN warmup is not also 'warmup +
    anneal_frac must be <= 1'). Kills config._problems 9-13, 15, 16, 20, 21, 26, 27, 37 and Config.__post_init__
    13-17, 23."""
    from masklab.config import GATE_NAMES, ConfigError
    cases = [({"alpha": True}, "alpha: expected float, got True"),
             ({"data": 3}, "data: expected str, got 3"),
             ({"warmup": float("nan")}, "warmup: must be a finite number, got nan"),
             ({"gate": "nope"}, f"gate: 'nope' is not one of {', '.join(GATE_NAMES)}"),
             ({"alpha": "x", "steps": "y"}, "alpha: expected float, got 'x'; steps: expected int, got 'y'")]
    for given, message in cases:
        with pytest.raises(ConfigError) as e:
            Config(**given)
        assert str(e.value) == message


def test_the_rules_that_tie_fields_together_hold_at_their_bounds_and_say_which_rule():
    """warmup + anneal_frac <= 1 and warmup + anneal_frac + finetune <= 1 (exactly 1 allowed); an oracle has no
    learned mask (gate none *and* no constraint); gate none has no mask to penalise. Each refusal is its rule's
    own sentence. Kills config._problems 46-56, 62, 66, 67, 70, 71."""
    from masklab.config import ConfigError
    for ok in ({"warmup": 0.5, "anneal_frac": 0.5, "finetune": 0.0},
               {"warmup": 0.3, "anneal_frac": 0.5, "finetune": 0.2},
               {"oracle": "ink", "gate": "none", "constraint": False}):
        Config(**ok)
    oracle = "an oracle run has no learned mask: use gate none and constraint false (preset oracle-ink / oracle-box)"
    cases = [({"warmup": 0.6, "anneal_frac": 0.5, "finetune": 0.0},
              "warmup + anneal_frac must be <= 1; warmup + anneal_frac + finetune must be <= 1 (the mask freezes "
              "after its anneal)"),
             ({"warmup": 0.3, "anneal_frac": 0.5, "finetune": 0.3},
              "warmup + anneal_frac + finetune must be <= 1 (the mask freezes after its anneal)"),
             ({"oracle": "ink", "gate": "none", "constraint": True}, oracle),
             ({"oracle": "box", "gate": "hard_concrete", "constraint": False}, oracle),
             ({"gate": "none", "constraint": False, "mask_loss": "seed"},
              "gate none (unmasked) has no mask to penalise: use mask_loss none")]
    for given, message in cases:
        with pytest.raises(ConfigError) as e:
            Config(**given)
        assert str(e.value) == message


def test_evaluate_says_collapsed_for_a_learned_mask_and_nothing_for_the_unmasked_classifier():
    """collapsed is a verdict on a learned mask: True for one that keeps nothing or everything, False for one that
    keeps some, None for a model without a mask (the unmasked classifier has nothing to collapse). Kills
    metrics.evaluate 42-44 (timeouts in the pass: a collapse never reported keeps trials running that should stop)."""
    from masklab.config import preset
    from masklab.data import TestSet
    from masklab.metrics import evaluate
    from masklab.models import build_model
    test = TestSet(torch.rand(4, 1, 8, 8, generator=_gen(5)), torch.arange(4))
    some = evaluate(_small_model(init_bias=-0.5), test, 2 / 3)
    assert 0.05 < some["area"] < 0.95 and some["collapsed"] is False
    assert evaluate(_small_model(init_bias=-8.0), test, 2 / 3)["collapsed"] is True         # keeps nothing
    assert evaluate(_small_model(init_bias=8.0), test, 2 / 3)["collapsed"] is True          # keeps everything
    unmasked = build_model(preset("unmasked", width=4, classifier_width=4), 1, 10)
    assert evaluate(unmasked, test, 2 / 3)["collapsed"] is None


def test_without_an_anneal_the_progress_and_the_logit_gain_jump_right_after_the_warmup():
    """anneal_frac 0: the anneal's progress is 0 through the warm-up's last step, then exactly 1 (the gain of
    noise_end 0.25 goes from 1 to 4 at once). Kills constraint.AreaConstraint.progress 4, 6, 7, 10."""
    from masklab.constraint import AreaConstraint
    from masklab.losses import logit_gain_at
    c = AreaConstraint(target=0.2, steps=10, warmup=0.5, anneal_frac=0.0)
    assert [c.progress(s) for s in (1, 5, 6, 10)] == [0.0, 0.0, 1.0, 1.0]
    cfg = Config(steps=10, warmup=0.5, anneal_frac=0.0, noise_end=0.25)
    assert [logit_gain_at(cfg, s) for s in (5, 6)] == [1.0, 4.0]
