"""Synthetic feature sets shared by the benchmarks (a module, not a bench:
`make bench` runs bench/*_bench.py only).

  clustered_unit_nonneg  the hard clustered set: points around 100 random
                         non-negative centres, ReLU'd, unit norm
  cnn_like_model/cnn_like  CNN-like: a continuum with a power-law PCA
                         spectrum lambda_i ~ i^-alpha in a random basis, a
                         positive mean direction (mostly positive), unit norm.
                         alpha = 1 is the generic CNN-like set; alpha = 1.87 is
                         the demo's measured spectrum (bench/feature_spectrum.py
                         on the random-weight VGG16 pool features).
"""
import numpy as np


def clustered_unit_nonneg(rng, n, dim, clusters=100):
    """Points around random non-negative centres, ReLU'd and L2-normalised."""
    centres = np.abs(rng.standard_normal((clusters, dim), dtype=np.float32))
    labels = rng.integers(0, clusters, n)
    x = centres[labels] + 0.6 * rng.standard_normal((n, dim), dtype=np.float32)
    np.maximum(x, 0, out=x)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


def cnn_like_model(rng, dim, alpha=1.0):
    """A random basis (full QR up to 512; block-diagonal 512-blocks, permuted,
    above), standard deviations sqrt(i^-alpha) and a positive mean."""
    b = min(dim, 512)
    blocks = [np.linalg.qr(rng.standard_normal((b, b)))[0] for _ in range(dim // b)]
    perm = rng.permutation(dim)
    lam = 1.0 / np.arange(1, dim + 1) ** alpha
    mu = np.abs(rng.standard_normal(dim))
    mu *= 2 * np.sqrt(lam.sum()) / np.linalg.norm(mu)
    return blocks, perm, np.sqrt(lam), mu


def cnn_like(rng, model, n, chunk=50_000):
    """n unit-norm float32 points of the model (made in chunks: 1M x 512 fits)."""
    blocks, perm, sd, mu = model
    dim = len(sd)
    b = blocks[0].shape[0]
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        z = rng.standard_normal((m, dim)) * sd
        y = np.empty_like(z)
        for i, q in enumerate(blocks):
            y[:, i * b:(i + 1) * b] = z[:, i * b:(i + 1) * b] @ q.T
        x = y[:, perm] + mu
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s:s + m] = x
    return out
