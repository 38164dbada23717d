"""Properties that hold for every input, stated once with Hypothesis instead of a hand-picked list:

- any valid Config comes back unchanged from JSON, from CLI flags (on any --preset) and from a URL query;
- every gate's output lies in [0, 1], and is exactly 0 or 1 for the binary gates with `hard`;
- the metrics do not depend on the order of the test images.
"""
import json
from urllib.parse import parse_qsl, urlencode

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from masklab import config as config_module
from masklab.cli import build_parser, config_from_args
from masklab.config import FIELD_NAMES, PRESETS, Config, ConfigError
from masklab.gates import BINARY_GATES, GATES, relaxed
from masklab.metrics import bimodality, contiguity, evaluate, localisation

DEFAULTS = Config()


def _floats(lo=None, hi=None, **kw):
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False, **kw)


# Values each known field may take (ranges as Config checks them); awkward floats included on purpose.
FIELD_VALUES = {
    "data": st.one_of(st.sampled_from(["cluttered-digits", "shapes"]),
                      st.builds(lambda kind, path: f"{kind}:{path}",
                                st.sampled_from(["mnist", "fashion-mnist", "cifar10", "folder"]),
                                st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Z")),
                                        min_size=1, max_size=20))),
    "canvas": st.integers(16, 512), "clutter": st.integers(0, 64),
    "image_size": st.one_of(st.just(0), st.integers(8, 1024)), "test_size": st.integers(0, 10**6),
    "width": st.integers(1, 4096), "mask_stride": st.integers(1, 64), "classifier_width": st.integers(1, 4096),
    "init_bias": _floats(-1e6, 1e6),
    "alpha": _floats(0, 1), "beta": _floats(0, 1e6), "lam": _floats(0, 10, exclude_min=True),
    "area_target": _floats(0, 1, exclude_min=True),
    "warmup": _floats(0, 0.33), "anneal_frac": _floats(0, 0.33), "finetune": _floats(0, 0.33),
    "dual_lr": _floats(0, 1e3), "area_floor": _floats(0, 1, exclude_max=True),
    "logit_bound": st.one_of(st.just(0.0), _floats(1, 1e3)), "tv": _floats(0, 10), "bimodal": _floats(0, 10),
    "temperature": _floats(0, 100, exclude_min=True), "temperature_end": _floats(0, 100, exclude_min=True),
    "lr": _floats(0, 1, exclude_min=True), "batch_size": st.integers(1, 10**5), "steps": st.integers(1, 10**7),
    "log_every": st.integers(1, 10**5), "seed": st.integers(0, 2**63 - 1),
}


def _field_strategy(name):
    """The field's own strategy; otherwise any bool for a bool, one of <NAME>_NAMES for a named choice, else
    the default (a field added since this list was written still round-trips at its default)."""
    if name in FIELD_VALUES:
        return FIELD_VALUES[name]
    default = getattr(DEFAULTS, name)
    if isinstance(default, bool):
        return st.booleans()
    names = getattr(config_module, f"{name.upper()}_NAMES", None)
    return st.sampled_from(names) if isinstance(default, str) and names else st.just(default)


@st.composite
def configs(draw):
    values = {name: draw(_field_strategy(name)) for name in FIELD_NAMES}
    if values["gate"] == "none":
        values["mask_loss"] = "none"                   # the unmasked model has no mask to penalise
    if values.get("oracle", "none") != "none":         # an oracle reference has no learned mask
        values.update(gate="none", mask_loss="none", constraint=False)
    try:
        return Config(**values)
    except ConfigError:                                # a combination a newer rule refuses
        assume(False)


def _flags(cfg, names):
    """CLI arguments for `names`, written as the URL writes them: `--name value` (`--name=value` where the value
    starts with '-': see test_a_negative_value_in_exponent_notation_after_a_space_flag)."""
    args = []
    for name in names:
        text = config_module._format(getattr(cfg, name))
        args += [f"--{name}={text}"] if text.startswith("-") else [f"--{name}", text]
    return args


ROUND_TRIP = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@ROUND_TRIP
@given(configs())
def test_any_valid_config_round_trips_through_json(cfg):
    assert Config.from_json(cfg.to_json()) == cfg
    assert Config.from_dict(json.loads(cfg.to_json())) == cfg


@ROUND_TRIP
@given(configs())
def test_any_valid_config_round_trips_through_a_url_query(cfg):
    """to_query, through a real URL query string (percent-encoded) and back."""
    url = urlencode(cfg.to_query())
    assert Config.from_query(dict(parse_qsl(url, keep_blank_values=True))) == cfg
    assert all(getattr(cfg, k) != getattr(DEFAULTS, k) for k in cfg.to_query())      # short: only the changes


@ROUND_TRIP
@given(configs(), st.sampled_from(list(PRESETS)))
def test_any_valid_config_round_trips_through_cli_flags_on_any_preset(cfg, name):
    """Every field as a flag gives the config back whatever --preset is under it; the URL's short form (only
    the changed fields) gives it back on the default preset."""
    full = build_parser().parse_args(["train", "--preset", name, *_flags(cfg, FIELD_NAMES)])
    assert config_from_args(full) == cfg
    short = build_parser().parse_args(["train", *_flags(cfg, list(cfg.to_query()))])
    assert config_from_args(short) == cfg


@pytest.mark.parametrize("value", [-1e-05, -2.5e-12, -3.0, -0.5])
def test_a_negative_value_in_exponent_notation_after_a_space_flag(value):
    """argparse (Python < 3.13) took '-1e-05' for an option; MaskLab's parser reads it as the flag's value."""
    cfg = Config(init_bias=value)
    args = build_parser().parse_args(["train", "--init_bias", cfg.to_query()["init_bias"]])
    assert config_from_args(args) == cfg


# --- gates ------------------------------------------------------------------------------------------------

logit_tensors = st.lists(_floats(-1e4, 1e4, width=32), min_size=1, max_size=64).map(
    lambda v: torch.tensor(v, dtype=torch.float32).reshape(1, 1, 1, -1))


@pytest.mark.parametrize("name", list(GATES))
@pytest.mark.parametrize("hard", [True, False])
@settings(deadline=None, max_examples=40)
@given(logits=logit_tensors, training=st.booleans(), temperature=_floats(0.01, 10), seed=st.integers(0, 2**32 - 1),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]))
def test_every_gate_output_is_in_0_1_and_binary_gates_are_exactly_0_or_1(name, hard, logits, training,
                                                                         temperature, seed, dtype):
    logits = logits.to(dtype)
    mask = GATES[name](logits, temperature, training, hard, torch.Generator().manual_seed(seed))
    assert mask.shape == logits.shape and mask.dtype == dtype
    assert ((mask >= 0) & (mask <= 1)).all(), mask
    if hard and name in BINARY_GATES:
        assert ((mask == 0) | (mask == 1)).all(), mask
        if not training:                                  # deterministic: the hard mask is m_eval > 0.5 ...
            margin = 0.02 if dtype == torch.bfloat16 else 1e-4          # ... where sigmoid(l / T) does not round
            clear = (logits.double() / temperature).abs() > margin      # to exactly 1/2 (straight_through: l > 0)
            assert torch.equal(mask.bool()[clear], (relaxed(name, logits, temperature) > 0.5)[clear])
    m_eval = relaxed(name, logits, temperature)
    assert ((m_eval >= 0) & (m_eval <= 1)).all()


# --- metrics: invariant to the order of the test images ------------------------------------------------------

@st.composite
def localisation_cases(draw):
    n = draw(st.integers(1, 6))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    hard = torch.rand(n, 1, 8, 8, generator=g) < draw(_floats(0, 1))
    ink = torch.rand(n, 1, 8, 8, generator=g) < 0.3
    score = torch.randn(n, 1, 8, 8, generator=g)
    corners = torch.rand(n, 2, 2, generator=g) * 8
    boxes = torch.cat([corners.min(1).values, corners.max(1).values], 1)          # x0, y0, x1, y1
    boxes[torch.rand(n, generator=g) < 0.3] = float("nan")                        # some images have no box
    order = torch.tensor(draw(st.permutations(range(n))))
    return score, hard, boxes, ink, order


@settings(deadline=None)
@given(localisation_cases())
def test_localisation_and_bimodality_do_not_depend_on_the_order_of_images(case):
    score, hard, boxes, ink, order = case
    assert localisation(score, hard, boxes, ink) == pytest.approx(
        localisation(score[order], hard[order], boxes[order], ink[order]), abs=1e-12)
    assert bimodality(score.sigmoid()) == bimodality(score.sigmoid()[order])
    assert contiguity(hard) == contiguity(hard[order])


_MODELS = {}


def _tiny_model_and_test():
    """One tiny untrained model and test set (with boxes and ink) for every example."""
    if not _MODELS:
        from masklab.data import open_data
        from masklab.models import build_model
        cfg = Config(canvas=32, clutter=2, test_size=24, width=4, classifier_width=4, device="cpu",
                     init_bias=0.0)
        data = open_data(cfg)
        _MODELS["x"] = (build_model(cfg, data.channels, data.classes).eval(), data.test, cfg)
    return _MODELS["x"]


@settings(max_examples=15, deadline=None)
@given(st.permutations(range(24)))
def test_evaluate_does_not_depend_on_the_order_of_the_test_set(order):
    from masklab.data import TestSet
    model, test, cfg = _tiny_model_and_test()
    order = torch.tensor(order)
    shuffled = TestSet(test.x[order], test.y[order], test.boxes[order], test.ink[order])
    a, b = evaluate(model, test, cfg.temperature_end), evaluate(model, shuffled, cfg.temperature_end)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-6), k
