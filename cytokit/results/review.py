"""Which flag words of a populations table mean "this estimate may be wrong" (the ``review`` column).

The one definition of the review columns (``review``, ``review_flags``, ``notes``) used by the gating engine
(``Strategy.apply``, ``cytokit gate``, the pipeline's tables) and by :func:`cytokit.results.coerce` for results
folders written before those columns existed. It sits in the results layer, below the gating engine that
writes the flags, so the reader needs nothing from :mod:`cytokit.gating`; :mod:`cytokit.gating.methods`
re-exports it. The words' meanings are in docs/gating.md ("Flags").
"""
from __future__ import annotations

from typing import Iterable

from . import schema as S

#: flag words that mean "this estimate may be wrong: review the gate" (see docs/gating.md, "Flags");
#: ``uncertain`` = the estimated error (``info["est_error_pp"]``, column ``est_error_pp``) exceeds
#: :data:`cytokit.gating.methods.confidence.UNCERTAIN_PP`. Other flags (``no_valley``, ``fell_back:tail``, ``unstable``...) record
#: how a gate was placed; ``unstable`` (the smoothing refits disagree) enters ``est_error_pp`` through
#: what the disagreement costs the population, and alone is not a review flag; so does ``noise_valley`` (a valley
#: between two noise bumps, neither the parent's main mode): what its merged reading moves the population enters
#: ``est_error_pp`` (cytokit.gating.methods.confidence).
REVIEW_FLAGS: frozenset[str] = frozenset({
    "uncertain", "ambiguous_mode", "unreliable", "few_events", "inverted", "empty", "skipped_valley",
    "scatter_overlap",  # a scatter gate holding more than its limit of other event classes (cytokit.gating.methods.scatter_overlap)
    "cut_through",  # moving a divider by 0.03 changes the population by more than itself (cytokit.gating.methods.edge)
    "near_empty",  # < 0.1 % of a parent of >= 1000 events (cytokit.gating.engine.NEAR_EMPTY_SHARE)
    "scatter_failed",  # a scatter gate above the population is estimated > 10 pp off (cytokit.gating.methods.scatter_overlap)
    "thresholds_disagree",  # two gates' thresholds on one marker, same parent and file (cytokit.gating.threshold_floor)
    "overcompensated",  # the gate (or one above it) reads a channel the file's failed compensation check moved (cytokit.gating.result.GatingResult.channel_notes)
    "compensation_suspect",  # the same, where the check found the negatives leaning below zero (matrix too strong? cytokit.compensation.check)
})


def _words(flags: str | Iterable[str] | None) -> list[str]:
    if flags is None:
        return []
    return [w for w in (flags.split(";") if isinstance(flags, str) else [str(f) for f in flags]) if w]


def _is_review_word(word: str) -> bool:
    return any(part in REVIEW_FLAGS for part in word.split(":"))


def needs_review(flags: str | Iterable[str]) -> bool:
    """True when ``flags`` (a ``;``-joined string or words, marker-prefixed or not) hold a review flag."""
    return any(_is_review_word(w) for w in _words(flags))


def split_flags(flags: str | Iterable[str] | None) -> tuple[list[str], list[str]]:
    """``(review_flags, notes)``: the words of ``flags`` (``;``-joined or a sequence) that are review flags
    (:data:`REVIEW_FLAGS`, marker/side prefixes kept, e.g. ``CD25:ambiguous_mode``) and the others, which
    only record how a gate was placed. Each in the order given, repeats dropped."""
    words = list(dict.fromkeys(_words(flags)))
    review = [w for w in words if _is_review_word(w)]
    return review, [w for w in words if not _is_review_word(w)]


def review_columns(flags: str | Iterable[str] | None) -> dict[str, bool | str]:
    """The populations table's review columns of a row with ``flags``: ``review`` (bool, =
    :func:`needs_review`: the estimate may be wrong), ``review_flags`` and ``notes`` (``;``-joined words of
    :func:`split_flags`). The one definition used by ``Strategy.apply``, ``cytokit gate``, the pipeline's
    tables and the reader of older results folders."""
    review, notes = split_flags(flags)
    return {S.REVIEW: bool(review), S.REVIEW_FLAGS: ";".join(review), S.NOTES: ";".join(notes)}
