"""``--fail-on`` rules for CI data checks: ``NAME OP VALUE[%]``, e.g. ``label_issues>5%``, ``leakage>0``,
``health<0.8``. A crossed rule makes ``report`` exit 3."""
from __future__ import annotations

import re
from dataclasses import dataclass

# name -> (what it is, whether it is a count of training samples, so that VALUE% means a share of them)
METRICS = {
    "label_issues": ("estimated number of wrong labels (VALUE% = share of training samples)", True),
    "health": ("overall health score, 0-1 (VALUE% = VALUE/100)", False),
    "min_class_health": ("lowest per-class health score, 0-1", False),
    "leakage": ("test samples with a near or exact copy in train", False),
    "duplicates": ("training samples that repeat an earlier one (near or exact)", True),
    "quality_issues": ("training samples with at least one image-quality flag", True),
    "overlapping_pairs": ("class pairs suggested for merging", False),
}
OPERATORS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
             "<=": lambda a, b: a <= b}
PATTERN = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|>|<)\s*([0-9]*\.?[0-9]+)\s*(%?)\s*$")


@dataclass(frozen=True)
class Rule:
    text: str
    metric: str
    operator: str
    value: float
    percent: bool

    def threshold(self, n_train: int) -> float:
        """The value compared with the metric: a percentage of training samples for counts, a fraction else."""
        if not self.percent:
            return self.value
        return self.value / 100 * (n_train if METRICS[self.metric][1] else 1)

    def crossed(self, metrics: dict[str, float | None], n_train: int) -> bool:
        value = metrics.get(self.metric)
        return value is not None and OPERATORS[self.operator](value, self.threshold(n_train))


def rules_help() -> str:
    names = "; ".join(f"{name} ({what})" for name, (what, _) in METRICS.items())
    return f"rules are NAME OP VALUE[%] with OP one of > >= < <= and NAME one of: {names}"


def parse_rule(text: str) -> Rule:
    """A :class:`Rule` from ``text``; ``ValueError`` naming the rule and listing the valid ones."""
    match = PATTERN.match(text or "")
    if not match or match.group(1) not in METRICS:
        raise ValueError(f"--fail-on {text!r}: not a rule; {rules_help()} (e.g. \"label_issues>5%\", "
                         "\"leakage>0\", \"health<0.8\").")
    name, op, value, percent = match.groups()
    return Rule(text.strip(), name, op, float(value), bool(percent))
