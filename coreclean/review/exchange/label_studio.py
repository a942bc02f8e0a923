"""Label Studio, both ways: a review queue as tasks to import, and the project's JSON export back as decisions.

Every task carries the image (Label Studio's local-files URL, a URL under a prefix the user gives, or for in-memory
sets a ``data:`` PNG), the current label, coreclean's suggestion as a ``predictions`` entry (pre-selected in the
editor: the classifier's predicted class and its probability, or, when the caller hands in the dataset audit, the
audit's most probable true class and its calibrated probability) and ``coreclean_analysis`` /
``coreclean_index``, which tie its answers to one training sample of one analysis. :func:`labeling_config` is the
matching ``Choices`` interface.

:func:`read_export` turns an export into decisions — the label kept: ``ok``; another class: ``mislabeled`` with
that class; the remove choice (or a choice named ``skip``): ``remove`` — and refuses the whole file (ValueError
naming the task) when it is malformed, holds a task of another analysis, or names an unknown class.
:func:`record_decisions` writes only what differs from the log's current decisions, so importing a file twice
changes nothing.
"""
from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from ...classifier.model import predict_proba
from ...data.images import ImageUnavailable, image_for
from ..export import SuggestionArrays
from ..log import Decision, ReviewLog
from .cleaned import original_labels

FROM_NAME, TO_NAME = "label", "image"
REMOVE_CHOICE = "remove"       # the stored value (alias) of the "Remove from the dataset" choice
REMOVE_ALIASES = (REMOVE_CHOICE, "skip")
LOCAL_FILES_URL = "/data/local-files/?d="
MODEL_VERSION = "coreclean"


def analysis_id(analysis) -> str:
    """The id tasks carry: the directory name (cache key) of the original build, shared by all its rounds."""
    return analysis.root_analysis.name


def labeling_config(classes: list[str]) -> str:
    """Label Studio's labeling interface: the image, its current label and coreclean's suggestion, one ``Choices``
    over the class names plus "Remove from the dataset"."""
    if REMOVE_CHOICE in classes or "skip" in classes:
        raise ValueError(f"a class is named {REMOVE_CHOICE!r} or 'skip', which the remove choice uses; rename it.")
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in classes)
    return (f'<View>\n  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
            '  <Header value="Label: $label (coreclean predicts $predicted)"/>\n'
            f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="true">\n{choices}\n'
            f'    <Choice value="Remove from the dataset" alias="{REMOVE_CHOICE}"/>\n  </Choices>\n</View>\n')


def _data_uri(analysis, index: int) -> str:
    image = image_for(analysis, index)
    if max(image.size) < 64:  # tiny digits: enlarge so an annotator sees them (nearest keeps the pixels)
        scale = -(-64 // max(image.size))
        image = image.resize((image.width * scale, image.height * scale), 0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_reference(analysis, index: int, *, url_prefix: str | None = None,
                    document_root: str | Path | None = None) -> str:
    """The task's ``image``: ``url_prefix`` + the file's path under the dataset root; else Label Studio's
    local-files URL relative to ``document_root`` (default: the dataset root, which is then
    ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``); in-memory images as a ``data:`` PNG."""
    if analysis.stack("images_train") is not None:
        return _data_uri(analysis, index)
    paths, root = analysis.paths_train, analysis.meta.get("root")
    if paths is None or not root:
        raise ValueError(f"{analysis.directory}: this analysis has embeddings only (no images or image paths); "
                         "Label Studio needs an image per task.")
    relative = str(paths[index])
    if url_prefix:
        return url_prefix.rstrip("/") + "/" + quote(relative)
    base = Path(document_root) if document_root else Path(root)
    try:
        inside_base = os.path.relpath(Path(root).resolve() / relative, base.resolve())
    except ValueError:  # another drive (Windows)
        inside_base = ".."
    if inside_base.startswith(".."):
        raise ValueError(f"--document-root {base}: the dataset root {root} is not inside it; give a folder that "
                         "contains the dataset.")
    return LOCAL_FILES_URL + quote(Path(inside_base).as_posix())


def _audit_choice(label: int, index: int, suggestions: SuggestionArrays,
                  names: list[str]) -> tuple[int, float, dict] | None:
    """(class to pre-select, its probability, extra task data) by the dataset audit for sample ``index`` labelled
    ``label``, or None where the audit has no suggestion (a sample removed by review). The audit's suggestion is
    never the given label; pre-selected is the more probable of the two (suggestion: ``confidence``; the given
    label: ``1 - p_wrong``), so an annotator is not pushed to change a label the audit believes."""
    suggested = int(suggestions.suggested[index])
    if suggested < 0:
        return None
    confidence, p_wrong = float(suggestions.confidence[index]), float(suggestions.p_wrong[index])
    extra = {"suggested": names[suggested], "suggestion_confidence": round(confidence, 6),
             "p_label_wrong": round(p_wrong, 6)}
    return (suggested, confidence, extra) if confidence >= 1.0 - p_wrong else (label, 1.0 - p_wrong, extra)


def tasks_for(analysis, indices: np.ndarray, *, url_prefix: str | None = None,
              document_root: str | Path | None = None,
              suggestions: SuggestionArrays | None = None) -> list[dict[str, Any]]:
    """Label Studio tasks (import JSON) for the training samples ``indices`` (m,), in that order. With
    ``suggestions`` (the dataset audit's per-sample arrays over this analysis's training set) the pre-selected
    choice and its score are the audit's (:func:`_audit_choice`) and ``data`` names the suggested class, its
    confidence and ``p_label_wrong``; else the classifier's prediction."""
    indices = np.asarray(indices, dtype=np.int64)
    names, labels = analysis.classes, original_labels(analysis)
    order = np.argsort(indices, kind="stable")  # read the memmap in file order
    proba = np.empty((len(indices), analysis.n_classes), np.float32)
    if len(indices):
        proba[order] = predict_proba(np.asarray(analysis.x_train[indices[order]]), analysis.coef)
    paths = analysis.paths_train
    tasks = []
    for row, i in enumerate(indices.tolist()):
        predicted = int(np.argmax(proba[row]))
        try:
            image = image_reference(analysis, i, url_prefix=url_prefix, document_root=document_root)
        except ImageUnavailable as err:
            raise ValueError(f"sample {i}: {err}.") from err
        data = {"image": image, "label": names[labels[i]], "predicted": names[predicted],
                "importance": float(analysis.class_importance[i]), "coreclean_analysis": analysis_id(analysis),
                "coreclean_index": i}
        if paths is not None:
            data["path"] = str(paths[i])
        chosen, score = predicted, float(proba[row, predicted])
        audited = None if suggestions is None else _audit_choice(int(analysis.y_train[i]), i, suggestions, names)
        if audited is not None:
            chosen, score, extra = audited
            data.update(extra)
        tasks.append({"data": data, "predictions": [{
            "model_version": MODEL_VERSION, "score": round(score, 6),
            "result": [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
                        "value": {"choices": [names[chosen]]}}]}]})
    return tasks


@dataclass(frozen=True)
class Answer:
    """One annotated sample: ``decision`` ('ok' | 'mislabeled' | 'remove'), ``new_label`` for mislabeled."""

    sample: int
    old_label: int
    decision: str
    new_label: int | None
    reviewer: str | None


def _reviewer(annotation: dict) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return who.get("email") or (f"label-studio user {who['id']}" if "id" in who else None)
    return f"label-studio user {who}" if who is not None else None


def read_export(path: str | Path, analysis) -> tuple[list[Answer], int]:
    """(answers, skipped): the newest non-cancelled annotation of every task in Label Studio's JSON export
    ``path``, as decisions on the training samples of ``analysis``; ``skipped`` counts tasks without one.
    ValueError (naming the file and task) for anything that is not an export of this analysis's tasks."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror}); give the file Label Studio exported.") from err
    return parse_export(text, analysis, source=str(path))


def parse_export(text: str | bytes, analysis, *, source: str) -> tuple[list[Answer], int]:
    """:func:`read_export` on the export's contents ``text`` (an upload); ``source`` names it in errors."""
    path = source
    try:
        tasks = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err}); export the project from Label Studio as "
                         "JSON.") from err
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise ValueError(f"{path}: not a Label Studio JSON export (expected a list of tasks); export as JSON.")
    names, labels, own = list(analysis.classes), original_labels(analysis), analysis_id(analysis)
    answers: dict[int, tuple[str, Answer]] = {}
    skipped = 0
    for position, task in enumerate(tasks):
        where = f"{path}: task {task.get('id', f'#{position + 1}')}"
        data = task.get("data")
        if not isinstance(data, dict) or "coreclean_index" not in data:
            raise ValueError(f"{where}: not a coreclean task (no data.coreclean_index); import only tasks written "
                             "by 'coreclean export --format label-studio'.")
        if data.get("coreclean_analysis") != own:
            raise ValueError(f"{where}: belongs to analysis {data.get('coreclean_analysis')!r}, not this one "
                             f"({own}); import it into the analysis it was exported from.")
        sample = data["coreclean_index"]
        if not isinstance(sample, int) or not 0 <= sample < len(labels):
            raise ValueError(f"{where}: coreclean_index {sample!r} is not a training index (0..{len(labels) - 1}).")
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
            raise ValueError(f"{where}: 'annotations' is not a list of annotations; export the project as JSON.")
        done = [a for a in annotations if not a.get("was_cancelled")]
        choice = None
        for annotation in sorted(done, key=lambda a: str(a.get("updated_at") or a.get("created_at") or "")):
            chosen = _choices(annotation, where)
            if chosen is not None:
                choice, newest = chosen, annotation
        if choice is None:
            skipped += 1
            continue
        if choice in REMOVE_ALIASES:
            decision, new = "remove", None
        elif choice in names:
            new = names.index(choice)
            decision, new = ("ok", None) if new == labels[sample] else ("mislabeled", new)
        else:
            raise ValueError(f"{where}: choice {choice!r} is not a class of this analysis nor {REMOVE_CHOICE!r}; "
                             "use the labeling config written with the tasks.")
        stamp = str(newest.get("updated_at") or newest.get("created_at") or "")
        answer = Answer(sample, int(labels[sample]), decision, new, _reviewer(newest))
        if sample not in answers or answers[sample][0] <= stamp:  # the same sample twice: the newest answer wins
            answers[sample] = (stamp, answer)
    return [answer for _, answer in answers.values()], skipped


def _choices(annotation: dict, where: str) -> str | None:
    result = annotation.get("result", [])
    if not isinstance(result, list):
        raise ValueError(f"{where}: an annotation's 'result' is not a list; export the project as JSON.")
    picked = [r for r in result if isinstance(r, dict) and r.get("type") == "choices"]
    if not picked:
        return None
    values = (picked[-1].get("value") or {}).get("choices")
    if not isinstance(values, list) or len(values) != 1 or not isinstance(values[0], str):
        raise ValueError(f"{where}: expected exactly one choice, got {values!r}; use the single-choice labeling "
                         "config written with the tasks.")
    return values[0]


def pending(answers: list[Answer], decided: dict[int, Decision]) -> list[Answer]:
    """The answers :func:`record_decisions` would write now: those whose (decision, new label) differs from the
    sample's current decision in ``decided`` ({sample: Decision}, the log's current decisions)."""
    def current(sample: int) -> tuple[str, int | None] | None:
        d = decided.get(sample)
        return None if d is None else (d.decision, d.new_label if d.decision == "mislabeled" else None)

    return [a for a in answers if current(a.sample) != (a.decision, a.new_label)]


def record_decisions(log: ReviewLog, answers: list[Answer]) -> list[Answer]:
    """Record every answer whose decision differs from the sample's current one in ``log``, all in one
    transaction; returns those written (importing the same answers again writes nothing)."""
    written = set(log.record_changes([(a.sample, a.old_label, a.decision, a.new_label, a.reviewer)
                                      for a in answers]))
    return [a for a in answers if a.sample in written]
