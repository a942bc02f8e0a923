"""The Sample page's "Why it is flagged" lines (issue 22: pages only render), on a stand-in analysis."""
from types import SimpleNamespace

import numpy as np

from ui.sample_facts import why_flagged

NAMES = ["cat", "dog"]


class Stored(SimpleNamespace):
    def stack(self, name):
        return self.arrays.get(name)


def analysis(explored=True):
    arrays = {"map_xy": np.zeros((4, 2)), "outlier_train": np.array([0.1, 0.5, 0.2, 0.9]),
              "duplicate_of_train": np.array([-1, 1, 1, -1]), "exact_dup_train": np.array([-1, 1, 1, -1]),
              "leak_of_test": np.array([2, -1])} if explored else {}
    return Stored(arrays=arrays, y_train=np.array([0, 0, 1, 0]), importance=np.array([0.3, 0.9, 0.5, 0.1]),
                  class_importance=np.array([0.3, 1.0, 1.0, 0.1]), y_test=np.array([1, 0]),
                  pred_test=np.array([1, 1]), p_pred_test=np.array([0.8, 0.6]))


def test_a_training_sample_in_an_exact_copy_group_with_a_decision():
    decision = SimpleNamespace(decision="mislabeled", new_label=1)
    lines = why_flagged(analysis(), 1, "train", NAMES, summary="p(label) 0.2", decision=decision)
    assert lines == ["p(label) 0.2", "importance rank 1 of 3 in class cat (per-class importance 1.000)",
                     "outlier score above 50.0% of the training set", "exact copy of #2 (group of 2)",
                     "review decision: **mislabeled** → dog"]


def test_without_exploration_or_decision_and_a_leaking_test_sample():
    assert why_flagged(analysis(explored=False), 0, "train", NAMES, summary="s") == ["s", "not reviewed yet"]
    assert why_flagged(analysis(), 0, "test", NAMES) == [
        "test sample: label dog, predicted dog (p 0.80)", "near-duplicate of training sample #2 (train/test leakage)"]
    assert len(why_flagged(analysis(), 1, "test", NAMES)) == 1
