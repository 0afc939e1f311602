"""Exact integer forward and backward passes of the registry's models (logreg, mlp, cnn).

Validators that score updates on a root set, or compute FLTrust's root update, must
get the same bits on every machine; float inference does not promise that (BLAS
and SIMD reorder sums). Here every number is a fixed-point int64 at the protocol's
scale 2**FRAC_BITS (``fedchain.learning.fixedpoint``): weights are the finalized
model's integers, inputs are quantised once with the same rule, and each layer is

    acc = x @ W.T + (b << FRAC_BITS)              (exact int64, scale 2**32)
    out = clip(acc >> FRAC_BITS, -QMAX, QMAX)     (floor shift, saturate to +-128)

Integer addition is associative, so numpy's loop order, threading and CPU
dispatch cannot change a result: only overflow could, and the bounds exclude it.
Overflow bounds: every operand is clipped to |v| <= QMAX = 2**23, so one product is
below 2**46 and a sum of K of them below 2**62 for K <= MAX_FAN_IN = 2**16 (fan-ins
here: 784 at most for 28x28 inputs, 9*16 = 144 for conv2). Backward sums over a
batch of at most MAX_FAN_IN examples, with the same bound. The bias term adds at
most 2**39.

Rounding differs from float32 torch only in the low bits (floor shifts, saturation
of activations beyond +-128, which trained models do not reach), so predictions
agree with the float model on nearly every example; ties in argmax go to the lowest
class index (numpy's argmax), the same on every machine.

Training (``train_exact``) is minibatch SGD on softmax cross-entropy in the same
arithmetic, in index order with no shuffling. The softmax uses an integer
exp: exp(-t) = 2**(-t*log2(e)), the fractional power from a 1,025-entry table built
with Python's correctly rounded ``decimal`` exp, so the table is the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, localcontext

import numpy as np

from fedchain.errors import LearningError
from fedchain.learning.fixedpoint import FRAC_BITS, QMAX, SCALE

MAX_FAN_IN = 1 << 16
IntParams = dict[str, np.ndarray]

_TABLE_BITS = 10
_LOG2E_Q = 94548  # round(log2(e) * 2**16)


def _exp2_table() -> np.ndarray:
    # A local context: vyper (imported by the chain layer) forbids changing the global one.
    with localcontext() as ctx:
        ctx.prec = 40
        ln2 = Decimal(2).ln()
        n = 1 << _TABLE_BITS
        return np.array([int((-(ln2 * i / n)).exp() * SCALE + Decimal("0.5")) for i in range(n + 1)], dtype=np.int64)


_EXP2 = _exp2_table()  # _EXP2[i] = round(2**16 * 2**(-i / 1024))


def quantize_inputs(x: np.ndarray) -> np.ndarray:
    """Inputs as fixed-point int64 (exact IEEE: float32 -> float64, times 2**16, rint)."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)) or (x.size and np.max(np.abs(x)) > QMAX / SCALE):
        raise LearningError("inputs must be finite and within the fixed-point range")
    return np.rint(x * SCALE).astype(np.int64)


def int_params(q: np.ndarray, template: Mapping[str, np.ndarray]) -> IntParams:
    """Cut a flat fixed-point vector into arrays named and shaped as ``template`` (sorted names)."""
    q = np.clip(np.asarray(q, dtype=np.int64), -QMAX, QMAX)
    names = sorted(template)
    sizes = [int(np.prod(template[n].shape)) for n in names]
    if q.ndim != 1 or q.size != sum(sizes):
        raise LearningError(f"vector of shape {q.shape} does not fit the template ({sum(sizes)} values)")
    pieces = np.split(q, np.cumsum(sizes)[:-1])
    return {n: p.reshape(template[n].shape) for n, p in zip(names, pieces)}


def flat_params(params: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(params[n], dtype=np.int64).ravel() for n in sorted(params)])


# -- layers: each returns its output and a function from output gradient to input gradient,
#    storing parameter gradients (summed over the batch, scale 2**16, clipped only after
#    ``gradient`` takes the mean) into ``grads``


def _rescale(acc: np.ndarray) -> np.ndarray:
    return np.clip(acc >> FRAC_BITS, -QMAX, QMAX)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape[-1] > MAX_FAN_IN:
        raise LearningError(f"fan-in {a.shape[-1]} above {MAX_FAN_IN}: int64 sums could overflow")
    return a @ b


Backward = Callable[[np.ndarray], np.ndarray]


def _linear(x, p, name, grads):
    w, b = p[f"{name}.weight"], p[f"{name}.bias"]
    out = _rescale(_matmul(x, w.T) + (b << FRAC_BITS))

    def back(dy):
        if grads is not None:
            grads[f"{name}.weight"] = _matmul(dy.T, x) >> FRAC_BITS
            grads[f"{name}.bias"] = dy.sum(axis=0)
        return _rescale(_matmul(dy, w))

    return out, back


def _im2col(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N*H*W, C*9) patches of a 3x3, padding-1 convolution."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))  # N, C, H, W, 3, 3
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * h * w, c * 9)


def _col2im(cols: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    n, c, h, w = shape
    win = cols.reshape(n, h, w, c, 3, 3)
    padded = np.zeros((n, c, h + 2, w + 2), dtype=np.int64)
    for i in range(3):
        for j in range(3):
            padded[:, :, i : i + h, j : j + w] += win[..., i, j].transpose(0, 3, 1, 2)
    return padded[:, :, 1:-1, 1:-1]


def _conv3x3(x, p, name, grads):
    w, b = p[f"{name}.weight"], p[f"{name}.bias"]
    n, _, h, wd = x.shape
    cols = _im2col(x)
    wm = w.reshape(w.shape[0], -1)
    out = _rescale(_matmul(cols, wm.T) + (b << FRAC_BITS)).reshape(n, h, wd, -1).transpose(0, 3, 1, 2)

    def back(dy):
        dym = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).reshape(n * h * wd, -1)
        if grads is not None:
            grads[f"{name}.weight"] = (_matmul(dym.T, cols) >> FRAC_BITS).reshape(w.shape)
            grads[f"{name}.bias"] = dym.sum(axis=0)
        return np.clip(_col2im(_rescale(_matmul(dym, wm)), x.shape), -QMAX, QMAX)

    return out, back


def _relu(x):
    mask = x > 0
    return np.where(mask, x, 0), lambda dy: np.where(mask, dy, 0)


def _bins(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive pooling windows: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _maxpool(x, rows, cols):
    """Max over each (row bin, col bin) window; the gradient goes to the first maximum."""
    n, c = x.shape[:2]
    out = np.empty((n, c, len(rows), len(cols)), dtype=np.int64)
    where = {}
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            win = x[:, :, r0:r1, c0:c1].reshape(n, c, -1)
            k = win.argmax(axis=2)
            out[:, :, i, j] = np.take_along_axis(win, k[..., None], axis=2)[..., 0]
            where[i, j] = (r0 + k // (c1 - c0), c0 + k % (c1 - c0))

    def back(dy):
        dx = np.zeros_like(x)
        ni, ci = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
        for (i, j), (r, s) in where.items():
            np.add.at(dx, (ni, ci, r, s), dy[:, :, i, j])
        return dx

    return out, back


def _forward(model: str, p: IntParams, x: np.ndarray, grads: dict | None) -> tuple[np.ndarray, list[Backward]]:
    backs: list[Backward] = []

    def step(pair):
        out, back = pair
        backs.append(back)
        return out

    n = x.shape[0]
    if model == "logreg":
        z = step(_linear(x.reshape(n, -1), p, "fc", grads))
    elif model in ("mlp", "mlp256"):  # one architecture, two widths
        h = step(_relu(step(_linear(x.reshape(n, -1), p, "hidden", grads))))
        z = step(_linear(h, p, "out", grads))
    elif model == "cnn":
        if x.ndim != 4:
            raise LearningError(f"cnn needs (N, C, H, W) inputs, got shape {x.shape}")
        a = step(_relu(step(_conv3x3(x, p, "conv1", grads))))
        h2, w2 = a.shape[2] // 2, a.shape[3] // 2
        a = step(_maxpool(a, [(2 * i, 2 * i + 2) for i in range(h2)], [(2 * j, 2 * j + 2) for j in range(w2)]))
        a = step(_relu(step(_conv3x3(a, p, "conv2", grads))))
        a = step(_maxpool(a, _bins(a.shape[2], 2), _bins(a.shape[3], 2)))
        shape = a.shape
        backs.append(lambda dy: dy.reshape(shape))
        z = step(_linear(a.reshape(n, -1), p, "fc", grads))
    else:
        raise LearningError(f"no exact forward pass for model {model!r}")
    return z, backs


def logits(model: str, params: IntParams, xq: np.ndarray) -> np.ndarray:
    """Fixed-point logits (N, classes) of ``params`` on quantised inputs ``xq``."""
    return _forward(model, params, np.asarray(xq, dtype=np.int64), None)[0]


def predict(model: str, params: IntParams, xq: np.ndarray) -> np.ndarray:
    """Predicted classes; a tie goes to the lowest class index."""
    return logits(model, params, xq).argmax(axis=1)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of fixed-point logits, fixed point, with the table-based integer exp."""
    t = (z.max(axis=1, keepdims=True) - z) * _LOG2E_Q >> FRAC_BITS  # t * log2(e), >= 0
    whole, frac = t >> FRAC_BITS, t & (SCALE - 1)
    shift = FRAC_BITS - _TABLE_BITS
    lo = _EXP2[frac >> shift]
    hi = _EXP2[(frac >> shift) + 1]
    e = (lo + ((hi - lo) * (frac & ((1 << shift) - 1)) >> shift)) >> np.minimum(whole, 62)
    return (e << FRAC_BITS) // e.sum(axis=1, keepdims=True)


def gradient(model: str, params: IntParams, xq: np.ndarray, y: np.ndarray) -> IntParams:
    """Mean cross-entropy gradient over the batch, fixed point (floor of the mean)."""
    grads: dict[str, np.ndarray] = {}
    z, backs = _forward(model, params, np.asarray(xq, dtype=np.int64), grads)
    dy = softmax(z)
    dy[np.arange(len(y)), y] -= SCALE
    for back in reversed(backs):
        dy = back(dy)
    return {name: np.clip(g // len(y), -QMAX, QMAX) for name, g in grads.items()}


def lr_fixed(lr: float) -> int:
    return int(np.rint(np.float64(lr) * SCALE))


def train_exact(
    model: str, params: IntParams, xq: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, lr: float
) -> IntParams:
    """Plain SGD in exact integer arithmetic: batches in index order, no shuffle, no momentum."""
    if len(xq) != len(y) or len(y) == 0 or batch_size > MAX_FAN_IN:
        raise LearningError(f"need matching, non-empty inputs and labels, got {len(xq)} and {len(y)}")
    rate = lr_fixed(lr)
    p = {name: v.copy() for name, v in params.items()}
    for _ in range(epochs):
        for start in range(0, len(y), batch_size):
            g = gradient(model, p, xq[start : start + batch_size], y[start : start + batch_size])
            for name in p:
                p[name] = np.clip(p[name] - (rate * g[name] >> FRAC_BITS), -QMAX, QMAX)
    return p
