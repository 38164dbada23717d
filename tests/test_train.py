import math
import resource
import time

import pytest
import torch

from masklab import device
from masklab.config import Config, preset
from masklab.data import open_data
from masklab.device import keep_heap
from masklab.models import build_model
from masklab.runs import fit
from masklab.train import RECORD_FIELDS, NonFiniteLoss, train


def _run(cfg):
    data = open_data(cfg)
    model = build_model(cfg, data.channels, data.classes)
    return model, list(train(cfg, model, data))


def test_same_seed_gives_identical_records_and_weights(tiny):
    """Two runs of one config are bitwise identical: the run's own generators drive data, noise and init."""
    (ma, ra), (mb, rb) = _run(tiny), _run(tiny)
    strip = lambda rs: [{k: v for k, v in r.to_dict().items() if k != "seconds"} for r in rs]
    assert strip(ra) == strip(rb)
    for va, vb in zip(ma.state_dict().values(), mb.state_dict().values()):
        assert torch.equal(va, vb)
    _, rc = _run(tiny.replace(seed=1))
    assert strip(rc) != strip(ra)


def test_records_arrive_every_log_every_steps_and_at_the_end(tiny):
    """A record every log_every steps plus the last step, with every field finite."""
    _, records = _run(tiny.replace(steps=7, log_every=3))
    assert [r.step for r in records] == [3, 6, 7]
    assert set(records[0].to_dict()) == set(RECORD_FIELDS)
    assert all(math.isfinite(v) for r in records for v in r.to_dict().values())


class _CountingSampler:
    """Real batches, counted: one batch is one training step."""

    def __init__(self, sampler):
        self.sampler, self.calls = sampler, 0

    def batch(self, n, generator):
        self.calls += 1
        return self.sampler.batch(n, generator)

    def to(self, device):
        self.sampler.to(device)


def test_the_caller_pauses_by_not_pulling_and_stops_with_break(tiny):
    """Nothing runs between records: while the caller holds the generator no batch is drawn and no weight
    moves, and the next pull trains on (so the frozen check could fail); after `break` and close, nothing more."""
    cfg = tiny.replace(steps=20, log_every=2)
    data = open_data(cfg)
    data.sampler = _CountingSampler(data.sampler)
    model = build_model(cfg, data.channels, data.classes)
    weights = lambda: {k: v.clone() for k, v in model.state_dict().items()}
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)
    gen = train(cfg, model, data)
    assert next(gen).step == 2 and data.sampler.calls == 2
    held = weights()
    time.sleep(0.3)                                          # the caller is busy elsewhere: paused
    assert data.sampler.calls == 2 and same(held, weights())
    assert next(gen).step == 4 and data.sampler.calls == 4   # pulling again trains on
    assert not same(held, weights())
    for record in gen:                                       # a caller's loop that stops with break
        break
    assert record.step == 6
    stopped = weights()
    time.sleep(0.3)
    assert data.sampler.calls == 6 and same(stopped, weights())
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)
    assert data.sampler.calls == 6 and same(stopped, weights())


class _PoisonedSampler:
    """Real batches, until `bad_step`, where one pixel becomes NaN."""

    def __init__(self, sampler, bad_step):
        self.sampler, self.bad_step, self.calls = sampler, bad_step, 0

    def batch(self, n, generator):
        self.calls += 1
        x, y = self.sampler.batch(n, generator)
        if self.calls >= self.bad_step:
            x = x.clone()
            x[0, 0, 0, 0] = float("nan")
        return x, y

    def to(self, device):
        self.sampler.to(device)


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_weights(tiny):
    """A NaN loss at step 5 raises NonFiniteLoss naming the step, with step 4's weights back in the model."""
    cfg = tiny.replace(steps=10, log_every=2)
    data = open_data(cfg)
    data.sampler = _PoisonedSampler(data.sampler, bad_step=5)
    model = build_model(cfg, data.channels, data.classes)
    seen = []
    with pytest.raises(NonFiniteLoss, match="step 5") as err:
        for record in train(cfg, model, data):
            seen.append({k: v.clone() for k, v in model.state_dict().items()})
    assert err.value.good_step == 4
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    assert all(torch.equal(seen[-1][k], v) for k, v in model.state_dict().items())


def test_fit_saves_a_failed_run_with_its_reason(tiny, tmp_path, monkeypatch):
    """fit() writes the run folder of a diverged run, status failed, reason in summary.json."""
    import masklab.runs as runs
    real = runs.open_data

    def poisoned(cfg, device="cpu", progress=None):
        data = real(cfg, device, progress)
        data.sampler = _PoisonedSampler(data.sampler, bad_step=3)
        return data

    monkeypatch.setattr(runs, "open_data", poisoned)
    run_dir, summary = fit(tiny, out=tmp_path / "run")
    assert summary["status"] == "failed" and "non-finite loss at step 3" in summary["reason"]
    assert summary["steps_done"] == 2
    assert (run_dir / "model.pt").exists() and (run_dir / "summary.json").exists()


def test_should_stop_ends_a_run_early_and_still_saves(tiny, tmp_path):
    """A stop request after the first record gives a complete run folder marked stopped."""
    run_dir, summary = fit(tiny.replace(steps=20), out=tmp_path / "run", should_stop=lambda: True)
    assert summary["status"] == "stopped" and summary["steps_done"] == 2
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "metrics.csv", "model.pt", "summary.json"]


def test_constraint_multiplier_stays_non_negative_and_grows_while_area_exceeds_target(tiny):
    """Dual ascent: multiplier >= 0 always, and it rises while the area is above an (immediate) target."""
    cfg = tiny.replace(steps=12, log_every=1, warmup=0.0, anneal_frac=0.0, area_target=0.05, dual_lr=0.5)
    _, records = _run(cfg)
    assert all(r.multiplier >= 0 for r in records)
    assert records[3].multiplier > records[0].multiplier > 0


def test_top_k_shows_exactly_the_scheduled_area_at_every_step_and_after(tiny):
    """Preset top-k: the hard area of every record is the annealed target (not a multiplier's lagging pull), and
    the trained model keeps exactly area_target of every test image."""
    cfg = preset("top-k", **{k: getattr(tiny, k) for k in ("canvas", "clutter", "batch_size", "test_size", "width",
                                                           "classifier_width")},
                 mask_stride=1, steps=10, log_every=1, warmup=0.2, anneal_frac=0.5, finetune=0.2, area_target=0.1)
    data = open_data(cfg)
    model = build_model(cfg, data.channels, data.classes)
    records = list(train(cfg, model, data))
    pixels = 32 * 32
    assert [r.area for r in records] == [pytest.approx(round(r.target * pixels) / pixels) for r in records]
    assert records[0].area == 1.0 and records[-1].area == pytest.approx(round(0.1 * pixels) / pixels)
    model.eval()
    kept = (model.gate_relaxed(data.test.x, cfg.temperature_end) > 0.5).flatten(1).sum(1)
    assert kept.tolist() == [round(0.1 * pixels)] * len(kept)


@pytest.mark.parametrize("name", ["unmasked", "seed", "mse-zero", "pooled-l1", "ste", "binary-concrete",
                                  "top-k", "sorted-area"])
def test_every_preset_trains_a_few_steps(tiny, name):
    """Each method runs end to end on a tiny config with finite losses."""
    cfg = preset(name, **{k: getattr(tiny, k) for k in ("canvas", "clutter", "batch_size", "steps", "log_every",
                                                        "test_size", "width", "classifier_width")})
    _, records = _run(cfg)
    assert len(records) == 3 and all(torch.isfinite(torch.tensor(r.loss)) for r in records)


def test_training_keeps_its_buffers_instead_of_faulting_them_in_again_every_step():
    """keep_heap (glibc): once warm, a default-sized step allocates from memory the process already has. glibc's
    default hands a step's buffers back to the kernel and faults them in again: about 8,400 minor page faults a
    step on this model, against about 130 kept (12 s of kernel time in a 600-step run on 2 cores)."""
    if not keep_heap():
        pytest.skip("not glibc, or the environment sets glibc's MALLOC_*_ variables: the allocator is left alone")
    cfg = Config(steps=20, log_every=10, test_size=50, device="cpu")
    data = open_data(cfg, "cpu")
    faults = [resource.getrusage(resource.RUSAGE_SELF).ru_minflt for _ in
              train(cfg, build_model(cfg, data.channels, data.classes), data)]
    assert len(faults) == 2 and (faults[-1] - faults[0]) / 10 < 2000   # steps 11-20; the first ten allocate first


def test_heap_settings_follow_the_steps_own_buffers():
    """The default 48-px step: its largest buffer (64 images x 32 channels, 18.9 MB) under the mmap threshold and
    what it frees at its end under the trim threshold; at 128 px the largest are over glibc's 32 MB and mapped
    anyway, so mid-sized ones are not kept either (16 MB)."""
    from masklab.train import step_buffers
    for canvas in (48, 128):
        cfg = Config(canvas=canvas)
        data = open_data(cfg, "cpu")
        model = build_model(cfg, data.channels, data.classes)
        before = [p.clone() for p in model.parameters()]
        buffers = step_buffers(model, (cfg.batch_size, data.channels, *data.size))
        settings = device.heap_settings(buffers)
        assert max(buffers) == cfg.batch_size * 32 * canvas * canvas * 4
        if canvas == 48:
            assert max(buffers) < settings[device.M_MMAP_THRESHOLD] <= device.MMAP_MAX
            assert settings[device.M_TRIM_THRESHOLD] >= 2 * sum(buffers)
        else:
            assert settings[device.M_MMAP_THRESHOLD] == device.MMAP_FLOOR
        assert model.training and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_heap_settings_of_a_large_step_stay_within_mallopts_c_int():
    """A step whose heap-served buffers total over 1 GB (100 of 30 MB): the trim threshold is capped at C's
    INT_MAX, not wrapped round by ctypes into a small one that would trim the heap every step."""
    settings = device.heap_settings([30 << 20] * 100)
    assert settings[device.M_TRIM_THRESHOLD] == (1 << 31) - 1
    assert all(0 < value <= (1 << 31) - 1 for value in settings.values())


def test_keep_heap_leaves_a_users_own_malloc_settings_alone(monkeypatch):
    monkeypatch.setattr(device, "_mallopt", None)
    monkeypatch.setenv("MALLOC_TOP_PAD_", "1048576")
    monkeypatch.setattr(device.ctypes, "CDLL", lambda *a: pytest.fail("mallopt called despite MALLOC_TOP_PAD_"))
    assert device.keep_heap() is False
