"""The metrics (README, "Metrics"): one definition used by the CLI, the benchmark and the app.

m_eval is the gate's deterministic relaxed mask; the hard mask is m_eval > 0.5 (threshold adjustable).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


COLLAPSE_LOW, COLLAPSE_HIGH = 0.005, 0.95
METRIC_NAMES = ("accuracy_full", "accuracy_soft", "accuracy_hard", "area", "bimodality", "contiguity", "collapsed",
                "precision_in_box", "iou_box", "ink_recall", "pointing_game")


def bimodality(m: Tensor) -> float:
    """Fraction of mask values within 0.01 of 0 or of 1."""
    return ((m <= 0.01) | (m >= 0.99)).float().mean().item()


def contiguity(hard: Tensor) -> float | None:
    """Of the pixels a hard mask (N, 1, H, W) keeps, the fraction in their image's largest 4-connected piece (pooled
    over the images): 1 for one region, low for scattered pixels or blocks (a lattice of isolated pixels: 1 / their
    number; a random mask keeping 30%: about 0.05). None when nothing is kept."""
    hard = hard.bool().flatten(0, -3)                                   # (N, H, W)
    kept = hard.sum().item()
    if not kept:
        return None
    h, w = hard.shape[-2:]
    largest = 0
    for part in hard.split(max(1, EVAL_PIXELS // (h * w))):
        largest += _pieces(part)[2].sum().item()
    return largest / kept


def largest_piece(hard: Tensor) -> Tensor:
    """A hard mask (N, 1, H, W) cut to each image's largest 4-connected piece of kept pixels (ties: the piece with
    the highest label); an empty mask stays empty."""
    flat = hard.bool().flatten(0, -3)
    keys, _, _, best = _pieces(flat)
    return (keys == best.view(-1, 1, 1)).view(hard.shape).to(hard.dtype)    # a dropped pixel's key matches no piece


def major_pieces(hard: Tensor, share: float) -> Tensor:
    """A hard mask (N, 1, H, W) without the 4-connected pieces smaller than `share` times its image's largest piece
    (Config.commit_pieces): share 0 keeps every piece, share 1 only the largest (all of them, if tied)."""
    flat = hard.bool().flatten(0, -3)
    _, size, largest, _ = _pieces(flat)
    keep = flat & (size >= share * largest.view(-1, 1, 1))
    return keep.view(hard.shape).to(hard.dtype)


def _pieces(hard: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(N, H, W) bool -> (each pixel's piece key (N, H, W), the size of each pixel's piece (N, H, W; 0 where nothing
    is kept), the size of each image's largest piece (N,), that piece's key (N,)). Every kept pixel takes the largest label among its kept 4-neighbours until nothing changes,
    so each piece ends with one label; a key is the label made unique across images."""
    n, h, w = hard.shape
    labels = torch.arange(1, h * w + 1, device=hard.device).view(1, h, w) * hard
    while True:
        grown = labels.clone()
        grown[:, 1:] = torch.maximum(grown[:, 1:], labels[:, :-1])
        grown[:, :-1] = torch.maximum(grown[:, :-1], labels[:, 1:])
        grown[:, :, 1:] = torch.maximum(grown[:, :, 1:], labels[:, :, :-1])
        grown[:, :, :-1] = torch.maximum(grown[:, :, :-1], labels[:, :, 1:])
        grown *= hard
        if torch.equal(grown, labels):
            break
        labels = grown
    keys = torch.arange(n, device=hard.device).view(n, 1, 1) * (h * w + 1) + labels
    pieces, which, sizes = keys[hard].unique(return_inverse=True, return_counts=True)
    size = torch.zeros_like(keys)
    size[hard] = sizes[which]
    image = pieces // (h * w + 1)
    largest = torch.zeros(n, dtype=sizes.dtype, device=hard.device).scatter_reduce(0, image, sizes, reduce="amax")
    # the largest piece's key: among each image's pieces of the largest size, the highest key (-1: nothing kept)
    best = torch.full((n,), -1, dtype=keys.dtype, device=hard.device).scatter_reduce(
        0, image, torch.where(sizes == largest[image], pieces, -1), reduce="amax")
    return keys, size, largest, best


def collapsed(area: float) -> bool:
    return area < COLLAPSE_LOW or area > COLLAPSE_HIGH


def box_masks(boxes: Tensor, shape) -> Tensor:
    """(N, 4) boxes x0, y0, x1, y1 -> (N, 1, H, W) bool masks of the pixels inside."""
    h, w = shape[-2:]
    ys = torch.arange(h, device=boxes.device, dtype=boxes.dtype)[None, :, None] + 0.5
    xs = torch.arange(w, device=boxes.device, dtype=boxes.dtype)[None, None, :] + 0.5
    b = boxes[:, :, None, None]
    inside = (xs >= b[:, 0]) & (xs < b[:, 2]) & (ys >= b[:, 1]) & (ys < b[:, 3])
    return inside[:, None]


CHANNELS_LAST = torch.channels_last   # (predict) CPU convs ~1.5x faster than in NCHW: the same predictions
EVAL_PIXELS = 32 * 48 * 48          # pixels in one evaluation pass of the classifier: half a default training batch


@torch.inference_mode()
def predict(model, x: Tensor, temperature: float, threshold: float = 0.5, batch: int | None = None,
            truth: Tensor | None = None):
    """Eval-mode pass over x in chunks: (m_eval, mask logits, class logits on x * hard mask, on x * m_eval,
    on x). An oracle model's m_eval is `truth`, the true mask (N, 1, H, W). Chunks hold `batch` images; by default
    as many as make the classifier's pass (three copies of each) EVAL_PIXELS pixels, so an evaluation's buffers stay
    under the 16 MB that keep_heap always serves from the heap, whatever the image size: memory does not grow with
    it, and no evaluation maps its buffers afresh (a chunk of 256 at 48 px mapped a 50 MB block per layer:
    thousands of page faults per evaluation, and slower: 3,000 images 11.7 s against 6.7-8.0 s). In inference mode,
    with no autograd bookkeeping at all: 15% faster than under no_grad (2,000 photos through the photo demo: 4.1 s
    against 4.8 s); the outputs are inference tensors, to be read, not trained through."""
    if getattr(model, "oracle", "none") != "none" and truth is None:
        raise ValueError(f"an oracle-{model.oracle} run masks with the true {model.oracle}, which only its own "
                         f"test set knows: evaluate it there (masklab eval), not on other images")
    batch = batch or max(1, EVAL_PIXELS // (3 * x.shape[-2] * x.shape[-1]))
    was_training = model.training
    model.eval()
    outs = {"soft": [], "hard": [], "full": [], "m": [], "l": []}
    try:
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            if truth is None:
                logits_m = model.mask_logits(xb)
                m = model.mask_gate.relaxed(logits_m, temperature)
            else:
                m = truth[i:i + batch].to(xb.dtype)
                logits_m = m * 40 - 20
            outs["m"].append(m)
            outs["l"].append(logits_m)
            # the three inputs in one classifier pass (the branch ran once, above)
            masks = torch.cat([(m > threshold).to(xb.dtype), m.to(xb.dtype), torch.ones_like(m, dtype=xb.dtype)])
            seen = (xb.repeat(3, 1, 1, 1) * masks).contiguous(memory_format=CHANNELS_LAST)
            hard, soft, full = model.classifier(seen)[0].chunk(3)
            outs["hard"].append(hard)
            outs["soft"].append(soft)
            outs["full"].append(full)
    finally:
        model.train(was_training)
    return tuple(torch.cat(outs[k]).float() for k in ("m", "l", "hard", "soft", "full"))


def truth_of(model, test) -> Tensor | None:
    """The true mask an oracle model classifies a TestSet with (None for a learned mask)."""
    if getattr(model, "oracle", "none") == "none":
        return None
    from .data import true_mask
    return true_mask(model.oracle, test.x, test.boxes, test.ink)


def evaluate(model, test, temperature: float, threshold: float = 0.5) -> dict:
    """All metrics on a TestSet. Localisation metrics are None where the test set has no boxes."""
    m, mask_logits, hard_logits, soft_logits, full_logits = predict(model, test.x, temperature, threshold,
                                                                    truth=truth_of(model, test))
    hard = m > threshold
    acc = lambda logits: (logits.argmax(1) == test.y).float().mean().item()
    area = hard.float().mean().item()
    result = {"accuracy_full": acc(full_logits), "accuracy_soft": acc(soft_logits),
              "accuracy_hard": acc(hard_logits), "area": area, "bimodality": bimodality(m),
              "contiguity": contiguity(hard), "collapsed": None if model.attention is None else collapsed(area),
              "precision_in_box": None, "iou_box": None, "ink_recall": None, "pointing_game": None}
    if test.boxes is not None:
        result.update(localisation(mask_logits, hard, test.boxes, test.ink))
    return result


def localisation(score: Tensor, hard: Tensor, boxes: Tensor, ink: Tensor | None) -> dict:
    """Pooled over images that have a box: kept-in-box / kept, IoU of hard mask and box, ink kept / ink,
    and the pointing game (the maximum of `score`, the mask logits, lies in the box; logits, since a
    clamped mask has many exact ties at 1)."""
    valid = ~torch.isnan(boxes).any(1)
    if not valid.any():
        return {}
    score, hard, boxes = score[valid], hard[valid], boxes[valid]
    inside = box_masks(boxes, score.shape)
    kept = hard.sum().item()
    result = {
        "precision_in_box": (hard & inside).sum().item() / kept if kept else 0.0,
        "iou_box": ((hard & inside).sum() / (hard | inside).sum().clamp(min=1)).item(),
        "pointing_game": inside.flatten(1).gather(1, score.flatten(1).argmax(1, keepdim=True)).float().mean().item(),
    }
    if ink is not None:
        ink = ink[valid]
        result["ink_recall"] = (hard & ink).sum().item() / max(1, ink.sum().item())
    return result


def pareto(rows: list[dict], accuracy: str = "accuracy_hard") -> list[dict]:
    """Rows not dominated in (lower area, higher `accuracy`), by area; collapsed or unfinished ones excluded."""
    ok = [r for r in rows if r.get("area") is not None and r.get(accuracy) is not None
          and not _truthy(r.get("collapsed"))]
    return sorted((r for r in ok if not any(o["area"] <= r["area"] and o[accuracy] >= r[accuracy]
                                            and (o["area"], o[accuracy]) != (r["area"], r[accuracy])
                                            for o in ok)), key=lambda r: r["area"])


def _truthy(v) -> bool:
    return v is True or str(v).lower() == "true"


def clean(d: dict) -> dict:
    """JSON-safe: NaN / inf floats become None."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
