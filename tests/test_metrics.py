"""SegmentationMetric against confusion matrices worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pdn.metrics import SegmentationMetric, compute_from_confusion

# target / prediction pairs: (0,0) (0,1) (1,1) (1,1) (2,0) and one ignored pixel
TARGET = torch.tensor([[0, 0, 1], [1, 2, 255]])
PRED = torch.tensor([[0, 1, 1], [1, 0, 2]])
#   rows = ground truth, columns = prediction
CONFUSION = [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_hand_computed_matrix_and_scores():
    metric = SegmentationMetric(3, class_names=["bg", "cat", "dog"])
    metric.update(PRED, TARGET)
    assert metric.confusion.tolist() == CONFUSION
    result = metric.compute()
    # TP = [1, 2, 0], gt = [2, 2, 1], predicted = [2, 3, 0], union = [3, 3, 1]
    assert result.iou == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert result.accuracy == pytest.approx([1 / 2, 1.0, 0.0])
    assert result.mIoU == pytest.approx(1 / 3)
    assert result.mAcc == pytest.approx(1 / 2)
    assert result.aAcc == pytest.approx(3 / 5)
    assert result.fwIoU == pytest.approx(2 / 5 * 1 / 3 + 2 / 5 * 2 / 3)
    assert result.num_pixels == 5  # the ignored pixel is not counted
    assert result.undefined_classes == [] and result.absent_classes == []


def test_logits_and_single_images_give_the_same_matrix():
    logits = torch.nn.functional.one_hot(PRED, 3).permute(2, 0, 1).float()  # (K, H, W)
    a, b, c = SegmentationMetric(3), SegmentationMetric(3), SegmentationMetric(3)
    a.update(logits[None], TARGET[None])  # (B, K, H, W) vs (B, H, W)
    b.update(logits, TARGET)  # (K, H, W) vs (H, W)
    c.update(PRED.numpy(), TARGET.numpy())
    assert a.confusion.tolist() == b.confusion.tolist() == c.confusion.tolist() == CONFUSION


def test_absent_classes_are_left_out_and_listed():
    # class 3 is predicted once but never present (IoU 0, accuracy undefined);
    # class 4 is neither present nor predicted (IoU and accuracy undefined)
    metric = SegmentationMetric(5, class_names=["a", "b", "c", "d", "e"])
    metric.update(torch.tensor([0, 3, 1, 2]), torch.tensor([0, 0, 1, 2]))
    result = metric.compute()
    assert result.iou == [0.5, 1.0, 1.0, 0.0, None]
    assert result.accuracy == [0.5, 1.0, 1.0, None, None]
    assert result.mIoU == pytest.approx((0.5 + 1 + 1 + 0) / 4)
    assert result.mAcc == pytest.approx((0.5 + 1 + 1) / 3)
    assert result.undefined_classes == ["e"]
    assert result.absent_classes == ["d", "e"]
    table = result.table()
    assert "n/a" in table and "left out of mIoU: e" in table
    assert not any(np.isnan(v) for v in [result.mIoU, result.mAcc, result.aAcc, result.fwIoU])
    data = json.loads(json.dumps(result.to_dict()))
    assert data["per_class"]["e"] == {"IoU": None, "Acc": None}
    assert data["undefined_classes"] == ["e"]


def test_accumulates_one_matrix_not_a_mean_of_images():
    metric = SegmentationMetric(2)
    metric.update(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0, 0, 1]))  # image 1
    metric.update(torch.tensor([1]), torch.tensor([1]))  # image 2
    # accumulated: [[3, 0], [1, 1]] -> IoU 0 = 3/4, IoU 1 = 1/2
    assert metric.confusion.tolist() == [[3, 0], [1, 1]]
    assert metric.compute().mIoU == pytest.approx((3 / 4 + 1 / 2) / 2)
    metric.reset()
    assert metric.confusion.sum() == 0
    empty = metric.compute()
    assert empty.mIoU is None and empty.aAcc is None and len(empty.undefined_classes) == 2


def test_compute_from_confusion_matches_metric():
    assert compute_from_confusion(np.array(CONFUSION)).iou == pytest.approx([1 / 3, 2 / 3, 0.0])


def test_bad_inputs_are_reported():
    metric = SegmentationMetric(3)
    with pytest.raises(ValueError, match="target label 7"):
        metric.update(torch.tensor([0]), torch.tensor([7]))
    with pytest.raises(ValueError, match="does not match"):
        metric.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="channels"):
        metric.update(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
