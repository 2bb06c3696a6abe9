"""QC kernels: the drift check's trimmed per-bin levels (qc._TrimmedLevels) against a bin-by-bin
computation (the mean of asinh(x / cofactor) over the bin's systematic subsample of valid events, lowest
and highest ``trim`` fraction dropped; the last bin runs to the end of the file), and the pile-up tie
counts (qc._column_counts_equal) through blocks of rows."""
from __future__ import annotations

import numpy as np

from cytokit.qc import _TrimmedLevels


def _by_bin(x: np.ndarray, valid: np.ndarray, starts: np.ndarray, stride: int, trim: float) -> np.ndarray:
    ends = np.append(starts[1:], x.size)
    out = []
    for a, b in zip(starts, ends):
        v = np.sort(np.arcsinh(x[a:b:stride] / np.float32(150))[valid[a:b:stride]])
        lo = int(np.floor(trim * v.size))
        kept = v[lo:v.size - lo]
        out.append(float(np.mean(kept.astype(np.float64))) if kept.size else 0.0)
    return np.array(out)


def test_trimmed_levels_equal_a_bin_by_bin_trimmed_mean():
    rng = np.random.default_rng(7)
    n, n_bins, stride, trim = 10_437, 10, 3, 0.2
    size = n // n_bins
    starts = np.arange(n_bins) * size
    x = rng.lognormal(6, 1.2, n).astype(np.float32)
    x[rng.random(n) < 0.01] *= 1000  # far events: trimmed away
    valid = rng.random(n) > 0.1
    valid[starts[4]:starts[5]] = False  # a bin with nothing valid: level 0
    c = np.float32(150)
    cut = size * (n_bins - 1)
    body = np.arcsinh(x[:cut].reshape(n_bins - 1, size)[:, ::stride] / c)
    last = np.arcsinh(x[starts[-1]::stride] / c)
    assert last.size > body.shape[1]  # the last bin holds the remainder
    got = _TrimmedLevels(valid, starts, size, stride, trim).levels(body, last)
    want = _by_bin(x, valid, starts, stride, trim)
    assert got[4] == 0.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    untrimmed = _TrimmedLevels(valid, starts, size, stride, 0.0).levels(body, last)
    assert not np.allclose(untrimmed, got, rtol=1e-3)  # the far events moved the untrimmed means


def test_column_counts_equal_in_blocks():
    """Ties with each column's value counted through blocks of rows (and a remainder of < 64 rows)."""
    from cytokit.qc import _COUNT_BLOCK_ROWS, _column_counts_equal

    rng = np.random.default_rng(2)
    n = 2 * _COUNT_BLOCK_ROWS + 64 * 3 + 17
    ev = rng.integers(0, 5, size=(n, 6)).astype(np.float32)
    values = np.array([0, 1, 2, 3, 4, np.nan])
    want = (ev == values.astype(np.float32)).sum(axis=0)
    got = _column_counts_equal(ev, values)
    assert got.tolist() == want.tolist() and got[-1] == 0 and got[:5].min() > n // 6
