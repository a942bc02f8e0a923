"""What the Sample page says about one sample ("Why it is flagged"), as lines of markdown: a pure function of the
analysis, the why-flagged summary and the review decision, so the page only renders them."""
from __future__ import annotations

from typing import Sequence

from coreclean.analysis import explore_queries as explore
from coreclean.review.log import Decision


def why_flagged(analysis, index: int, split: str, names: Sequence[str], *, summary: str | None = None,
                decision: Decision | None = None) -> list[str]:
    """Lines about sample ``index`` of ``split``. A training sample: ``summary`` (the why-flagged terms,
    ``Reason.summary``), its importance rank, outlier percentile and duplicate group (when the analysis has the
    exploration stage) and its review ``decision``. A test sample: its label, prediction and train/test leak."""
    explored = explore.has_exploration(analysis)
    if split == "train":
        label = int(analysis.y_train[index])
        lines = [summary] if summary else []
        if explored:
            signals = explore.sample_signals(analysis, index)
            lines.append(f"importance rank {signals.rank:,} of {signals.class_size:,} in class {names[label]} "
                         f"(per-class importance {analysis.class_importance[index]:.3f})")
            lines.append(f"outlier score above {signals.outlier_percentile:.1%} of the training set")
            if len(signals.group):
                others = ", ".join(f"#{j}" for j in signals.group[:8] if j != index)
                kind = "exact copy" if len(signals.exact_group) else "near-duplicate"
                lines.append(f"{kind} of {others}{' …' if len(signals.group) > 9 else ''} "
                             f"(group of {len(signals.group)})")
        lines.append(f"review decision: **{decision.decision}**" + (
            f" → {names[decision.new_label]}" if decision.new_label is not None else "")
            if decision else "not reviewed yet")
        return lines
    label, predicted = int(analysis.y_test[index]), int(analysis.pred_test[index])
    lines = [f"test sample: label {names[label]}, predicted {names[predicted]} (p {analysis.p_pred_test[index]:.2f})"]
    copy = explore.train_copy_of(analysis, index) if explored else -1
    if copy >= 0:
        lines.append(f"near-duplicate of training sample #{copy} (train/test leakage)")
    return lines
