"""Localisation metrics on hand-made masks and boxes, numbers worked out by hand: precision in box, IoU with
the box, ink recall and the pointing game (pooled over the images that have a box); and evaluate() reports
them from the mask logits of a real model."""

import pytest
import torch

from masklab.metrics import box_masks, contiguity, evaluate, largest_piece, localisation, major_pieces

NAN = float("nan")


def _pixels(coords, n=4):
    m = torch.zeros(1, n, n, dtype=torch.bool)
    for r, c in coords:
        m[0, r, c] = True
    return m


def _case():
    """Three 4x4 images. Boxes are x0, y0, x1, y1 (x = column, end exclusive).

    A: box columns 0-2 of row 0 (3 pixels); kept (0,1), (0,2), (3,3): 2 in the box; ink (0,1), (1,1), (2,2): 1
       kept; the score peaks at (0,2), inside.
    B: box rows 2-3 x columns 2-3 (4 pixels); nothing kept; ink (3,3); the score peaks at (0,0), outside.
    C: no box (NaN): left out of every number, though it keeps everything.
    Pooled: precision 2/3, IoU 2 / (4 + 4) = 1/4, ink recall 1/4, pointing 1/2."""
    boxes = torch.tensor([[0.0, 0.0, 3.0, 1.0], [2.0, 2.0, 4.0, 4.0], [NAN, NAN, NAN, NAN]])
    hard = torch.stack([_pixels([(0, 1), (0, 2), (3, 3)]), _pixels([]), torch.ones(1, 4, 4, dtype=torch.bool)])
    ink = torch.stack([_pixels([(0, 1), (1, 1), (2, 2)]), _pixels([(3, 3)]), torch.ones(1, 4, 4, dtype=torch.bool)])
    score = torch.zeros(3, 1, 4, 4)
    score[0, 0, 0, 2] = 5.0
    score[1, 0, 0, 0] = 5.0
    score[2, 0, 3, 3] = 5.0
    return score, hard, boxes, ink


def test_box_masks_cover_the_pixels_whose_centres_lie_in_the_box():
    """x is the column, y the row, the end is exclusive, and a pixel counts by its centre (c + 0.5)."""
    inside = box_masks(torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.6, 0.4, 1.6, 1.5]]), (5, 4))
    assert inside.shape == (2, 1, 5, 4)
    expected = torch.zeros(5, 4, dtype=torch.bool)
    expected[0:2, 1:3] = True
    assert torch.equal(inside[0, 0], expected)
    assert inside[1, 0].nonzero().tolist() == [[0, 1]]            # centres 0.5 < 0.6 and 1.5 !< 1.5 are out


def test_localisation_metrics_match_the_hand_computed_values():
    result = localisation(*_case())
    assert result["precision_in_box"] == pytest.approx(2 / 3)
    assert result["iou_box"] == pytest.approx(1 / 4)
    assert result["ink_recall"] == pytest.approx(1 / 4)
    assert result["pointing_game"] == pytest.approx(1 / 2)


def test_localisation_edge_cases():
    """Nothing kept: precision 0 (not a division by zero); no ink known: no ink_recall; no box anywhere: {}."""
    score, hard, boxes, ink = _case()
    none_kept = localisation(score, torch.zeros_like(hard), boxes, ink)
    assert none_kept["precision_in_box"] == 0.0 and none_kept["iou_box"] == 0.0 and none_kept["ink_recall"] == 0.0
    assert "ink_recall" not in localisation(score, hard, boxes, None)
    assert localisation(score, hard, torch.full_like(boxes, NAN), ink) == {}
    everything = localisation(score, torch.ones_like(hard), boxes, ink)
    assert everything["precision_in_box"] == pytest.approx(7 / 32) and everything["ink_recall"] == 1.0
    assert everything["iou_box"] == pytest.approx(7 / 32)


def test_contiguity_is_the_share_of_kept_pixels_in_their_images_largest_piece():
    """By hand: a 2x2 block and two isolated pixels: 4 of 6; with another image keeping one pixel (beside where a's
    (3, 1) is, but in another image: no neighbour), (4 + 1) / 7; two 2x2 blocks apart: 4 / 8 (scattered blocks are
    not a region, whatever their size); a lattice of 9 single pixels 1/9, everything 1; opposite borders do not
    touch; a winding stroke is one piece; nothing kept gives None."""
    a = _pixels([(0, 0), (0, 1), (1, 0), (1, 1), (3, 3), (3, 1)], n=4)
    b = _pixels([(3, 0)], n=4)
    assert contiguity(torch.stack([a])) == pytest.approx(4 / 6)
    assert contiguity(torch.stack([a, b])) == pytest.approx(5 / 7)
    assert contiguity(torch.stack([_pixels([(0, 0), (0, 1), (1, 0), (1, 1), (2, 3), (3, 3), (2, 2), (3, 2)])])) == 0.5
    lattice = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    lattice[..., ::2, ::2] = True
    assert contiguity(lattice) == pytest.approx(1 / 9) and contiguity(torch.ones(2, 1, 6, 6)) == 1.0
    wrap = _pixels([(0, 0), (0, 3), (3, 0)], n=4)                                 # the torus would join these
    assert contiguity(torch.stack([wrap])) == pytest.approx(1 / 3)
    snake = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    snake[0, 0, ::2] = True                                                       # rows 0, 2, 4, 6, 8 ...
    snake[0, 0, 1::4, -1] = snake[0, 0, 3::4, 0] = True                           # ... joined at alternate ends
    assert contiguity(snake) == 1.0 and contiguity(torch.zeros(2, 1, 4, 4)) is None


def test_contiguity_never_joins_a_pixel_to_a_piece_it_does_not_touch():
    """Labels grow from every side: a piece whose largest label is far away does not reach an isolated pixel in the
    same column (or row) as one of its pixels. An L along row 0 and column 3 (7 pixels) and a pixel at (2, 0): 7/8;
    the same turned (column 0 and row 3, a pixel at (0, 2)): 7/8."""
    ell = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 3), (2, 3), (3, 3)]
    assert contiguity(torch.stack([_pixels(ell + [(2, 0)])])) == pytest.approx(7 / 8)
    turned = [(c, r) for r, c in ell]
    assert contiguity(torch.stack([_pixels(turned + [(0, 2)])])) == pytest.approx(7 / 8)


def test_contiguity_credits_each_piece_to_its_own_image():
    """Pieces are told apart by image and label: image 5's pair on row 0 (small labels) is its own largest piece,
    not a smaller piece of image 4 (a 2x2 block), so everything kept is in its image's largest piece."""
    empty = _pixels([])
    images = [empty] * 4 + [_pixels([(2, 2), (2, 3), (3, 2), (3, 3)]), _pixels([(0, 0), (0, 1)])]
    assert contiguity(torch.stack(images)) == 1.0


def test_contiguity_pools_over_chunks_of_images(monkeypatch):
    """Large test sets are measured in chunks (metrics.EVAL_PIXELS pixels each): every chunk counts."""
    import masklab.metrics
    a = _pixels([(0, 0), (0, 1), (1, 0), (1, 1), (3, 3), (3, 1)], n=4)
    b = _pixels([(3, 0)], n=4)
    monkeypatch.setattr(masklab.metrics, "EVAL_PIXELS", 2 * 16)                  # two 4x4 images a chunk
    assert contiguity(torch.stack([a, b, a, b, a])) == pytest.approx((4 + 1 + 4 + 1 + 4) / (6 + 1 + 6 + 1 + 6))


def test_evaluate_reports_localisation_from_the_mask_logits(tiny):
    """evaluate() on a test set with boxes and ink gives every localisation metric; the pointing game looks at the
    mask logits (a clamped mask has ties at 1), so moving the logits' peak into or out of the box decides it."""
    from masklab.data import TestSet
    from masklab.models import build_model

    cfg = tiny.replace(gate="straight_through", canvas=16)
    model = build_model(cfg, 1, 3).eval()
    x = torch.rand(2, 1, 16, 16)
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [8.0, 8.0, 16.0, 16.0]])
    ink = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    ink[:, :, 4:12, 4:12] = True

    def peaks_at(*where):
        def logits(xb):
            out = torch.full((len(xb), 1, 16, 16), -1.0)
            out[:, :, 0:8, 0:6] = 1.0                               # open: rows 0-7 x columns 0-5, 48 pixels
            for i, (r, c) in enumerate(where):
                out[i, :, r, c] = 3.0                               # image i's peak
            return out
        return logits

    test = TestSet(x, torch.tensor([0, 1]), boxes, ink)
    model.mask_logits = peaks_at((2, 2), (2, 2))                    # in A's box; not in B's
    m = evaluate(model, test, cfg.temperature_end)
    assert m["pointing_game"] == pytest.approx(0.5)
    assert m["area"] == pytest.approx(48 / 256)
    assert m["precision_in_box"] == pytest.approx(48 / 96)          # A's 48 inside its box, B's 48 outside
    assert m["iou_box"] == pytest.approx(48 / (64 + 64 + 48))       # unions: A 64, B 64 + 48
    assert m["ink_recall"] == pytest.approx(16 / 128)               # rows 4-7 x columns 4-5 of each 8x8 ink
    model.mask_logits = peaks_at((2, 2), (12, 12))                  # each in its own box
    assert evaluate(model, test, cfg.temperature_end)["pointing_game"] == 1.0
    model.mask_logits = peaks_at((12, 12), (2, 2))                  # each in the other's box
    assert evaluate(model, test, cfg.temperature_end)["pointing_game"] == 0.0


def test_largest_piece_keeps_each_images_largest_piece_only():
    """By hand: a 2x2 block beside two isolated pixels keeps the block; an image whose pieces tie keeps one of them
    whole; an empty mask stays empty; each image is cut on its own (a larger piece in another image changes nothing)
    and the dtype and shape are the input's."""
    block = _pixels([(0, 0), (0, 1), (1, 0), (1, 1), (3, 3), (3, 1)], n=4)
    tie = _pixels([(0, 0), (3, 3)], n=4)
    stroke = _pixels([(2, 0), (2, 1), (2, 2), (2, 3), (1, 3)], n=4)
    masks = torch.stack([block, tie, torch.zeros_like(block), stroke]).float()
    cut = largest_piece(masks)
    assert cut.shape == masks.shape and cut.dtype == torch.float32
    assert torch.equal(cut[0], _pixels([(0, 0), (0, 1), (1, 0), (1, 1)], n=4).float())
    assert cut[1].sum() == 1 and (cut[1] <= masks[1]).all()
    assert cut[2].sum() == 0 and torch.equal(cut[3], masks[3])
    assert torch.equal(largest_piece(masks.bool()), cut.bool())


def test_major_pieces_drops_the_pieces_under_a_share_of_their_images_largest():
    """By hand, on a 6x6 image: a 3x3 block (9), a 2x2 block (4) and a single pixel (1). A share of 0.25 keeps the
    pieces of at least 2.25 pixels (both blocks), 0.5 the 9 alone, 0 everything; each image is cut against its own
    largest (a lone pixel in the next image is its own largest, kept); an empty mask stays empty; dtype and shape
    are the input's."""
    big = [(r, c) for r in range(3) for c in range(3)]
    small = [(4, 4), (4, 5), (5, 4), (5, 5)]
    one = _pixels(big + small + [(0, 5)], n=6)
    masks = torch.stack([one, _pixels([(5, 0)], n=6), torch.zeros_like(one)]).float()
    assert torch.equal(major_pieces(masks, 0.25)[0], _pixels(big + small, n=6).float())
    assert torch.equal(major_pieces(masks, 0.5)[0], _pixels(big, n=6).float())
    assert torch.equal(major_pieces(masks, 0.0), masks) and torch.equal(major_pieces(masks, 1.0), largest_piece(masks))
    cut = major_pieces(masks.bool(), 0.25)
    assert cut.dtype == torch.bool and torch.equal(cut[1:], masks[1:].bool())
