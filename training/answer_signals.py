"""Signals read from a cheap model's answer text, and whether they transfer across sources.

A router may read the cheap answer (when the caller sends it) to judge it without a check.
These are cheap text features; the question is whether a rule learned on some sources holds on
another: `leave_one_source_out` fits a logistic model on every source but one and reports the
held-out source's AUC for predicting the answer's correctness. A signal that does not transfer
must not ship on by default (a deployment's own outcomes would have to teach it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

SIGNALS = ("log_chars", "lines", "code_block", "format_ok", "refusal", "hedge")
_REFUSAL = re.compile(r"\b(I'm sorry|I cannot|I can't|As an AI|I am unable)\b", re.I)
_HEDGE = re.compile(r"\b(I think|not sure|probably|might be|it depends|unclear)\b", re.I)
_OPTION = re.compile(r"^\s*\(?[A-E]\)?(\W|$)")


def signals(answer: str) -> list[float]:
    """The answer's text features, in `SIGNALS` order. `format_ok`: the answer has the shape
    its task asks for (an option letter first, or a Python function): a weak check."""
    text = answer or ""
    return [math.log1p(len(text)), float(text.count("\n") + 1), float("```" in text),
            float(bool(_OPTION.match(text)) or "def " in text), float(bool(_REFUSAL.search(text))),
            float(bool(_HEDGE.search(text)))]


def leave_one_source_out(train: Mapping[str, tuple[Sequence[str], np.ndarray]],
                         test: Mapping[str, tuple[Sequence[str], np.ndarray]]
                         ) -> dict[str, dict[str, float]]:
    """Per held-out source: the AUC of a model fitted on the other sources' train answers
    (`transfer`), of one fitted on its own train answers (`in_source`, the ceiling), on its
    test answers. NaN where the held-out labels are all one class."""
    feats = {s: (np.array([signals(a) for a in answers]), y) for s, (answers, y) in train.items()}
    out: dict[str, dict[str, float]] = {}
    for held, (answers, y_test) in test.items():
        x_test = np.array([signals(a) for a in answers])
        others = [s for s in feats if s != held]
        x = np.vstack([feats[s][0] for s in others])
        y = np.concatenate([feats[s][1] for s in others])
        out[held] = {"transfer": _auc(x, y, x_test, y_test),
                     "in_source": _auc(*feats[held], x_test, y_test)}
    return out


def _auc(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    if len(set(y.tolist())) < 2 or len(set(y_test.tolist())) < 2:
        return math.nan
    model = LogisticRegression(max_iter=1000).fit(x, y)
    return float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))
