"""Agreement of clusters with reference labels (expert gates, simulated truth), per event.

* :func:`f1_matched` — FlowCAP-style F1: each reference population is matched one-to-one to a cluster
  (Hungarian assignment maximising the summed F1); returns per-population F1 and the size-weighted mean.
* :func:`f1_majority` — each cluster is given the reference label of most of its events (many clusters
  may merge into one population), then per-population F1 and the size-weighted mean.
* :func:`adjusted_rand` — adjusted Rand index (scikit-learn).
All take 1-D label arrays of equal length; ``ignore`` drops events whose reference label is listed
(e.g. ``"Unlabeled"``). F1 and ARI are fractions (0-1).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score


def _keep(true: np.ndarray, pred: np.ndarray, ignore: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(true)
    pred = np.asarray(pred)
    if true.shape != pred.shape:
        raise ValueError(f"label arrays differ in length: {true.shape} vs {pred.shape}")
    mask = ~np.isin(true.astype(str), list(ignore))
    return true[mask], pred[mask]


def _contingency(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t_names, t_idx = np.unique(true, return_inverse=True)
    p_names, p_idx = np.unique(pred, return_inverse=True)
    table = np.zeros((len(t_names), len(p_names)), dtype=np.int64)
    np.add.at(table, (t_idx, p_idx), 1)
    return table, t_names, p_names


def _f1_table(table: np.ndarray) -> np.ndarray:
    t_tot = table.sum(axis=1, keepdims=True)
    p_tot = table.sum(axis=0, keepdims=True)
    denom = t_tot + p_tot
    return np.divide(2.0 * table, denom, out=np.zeros(table.shape), where=denom > 0)


def f1_matched(true: np.ndarray, pred: np.ndarray, *, ignore: Iterable[str] = ()) -> tuple[float, pd.Series]:
    """Size-weighted mean F1 with one-to-one matching, and the per-population F1 (Series)."""
    true, pred = _keep(true, pred, ignore)
    table, t_names, _ = _contingency(true, pred)
    f1 = _f1_table(table)
    rows, cols = linear_sum_assignment(-f1)
    per = pd.Series(0.0, index=[str(t) for t in t_names])
    per.iloc[rows] = f1[rows, cols]
    w = table.sum(axis=1)
    return float(np.average(per.to_numpy(), weights=w)), per


def f1_majority(true: np.ndarray, pred: np.ndarray, *, ignore: Iterable[str] = ()) -> tuple[float, pd.Series]:
    """Size-weighted mean F1 after labelling each cluster by its majority population."""
    true, pred = _keep(true, pred, ignore)
    table, t_names, _ = _contingency(true, pred)
    owner = table.argmax(axis=0)
    merged = np.zeros((len(t_names), len(t_names)), dtype=np.int64)
    for j, o in enumerate(owner):
        merged[:, o] += table[:, j]
    f1 = np.diag(_f1_table(merged))
    per = pd.Series(f1, index=[str(t) for t in t_names])
    return float(np.average(f1, weights=table.sum(axis=1))), per


def adjusted_rand(true: np.ndarray, pred: np.ndarray, *, ignore: Iterable[str] = ()) -> float:
    """Adjusted Rand index of the two labellings (after dropping ignored reference labels)."""
    true, pred = _keep(true, pred, ignore)
    return float(adjusted_rand_score(true, pred))
