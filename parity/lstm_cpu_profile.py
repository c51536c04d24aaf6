"""Where a JAX LSTM layer's CPU time goes, and what three rewrites of it do (issue 10's speed gap).

    python -m parity.lstm_cpu_profile [--batch 128] [--time 100] [--hidden 128]

One layer, input width = hidden, median of 20 jitted calls after 3 warm-ups:

- the forward scan's parts: the recurrent matrix products alone, the gate nonlinearities alone;
- the forward and forward+backward of the cell as `jax_impl` writes it (four gate slices), and
  with the gates fused into one `tanh` over the contiguous [B, 4H] block;
- autodiff of the per-example masked scan under `vmap` (the port's formulation) against a
  hand-written `custom_vjp` (weight gradients as one GEMM after the backward scan, oneDNN's way),
  per example under `vmap` and time-major for the whole batch.

Every variant's gradients are checked against autodiff (relative error printed).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def median_ms(f: Callable[..., Any], *args: Any, repeats: int = 20) -> float:
    f = jax.jit(f)
    for _ in range(3):
        jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def gate_scale(h: int) -> tuple[Array, Array]:
    """sigmoid(z) = 0.5 tanh(z / 2) + 0.5 for i, f, o; tanh for g (torch's order i, f, g, o)."""
    half, one = jnp.full(h, 0.5), jnp.ones(h)
    return jnp.concatenate([half, half, one, half]), jnp.concatenate([half, half, 0 * one, half])


def cell_sliced(z: Float[Array, "b g"], c: Float[Array, "b h"]) -> tuple[Array, Array]:
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def cell_fused(z: Float[Array, "b g"], c: Float[Array, "b h"]) -> tuple[Array, Array]:
    h = c.shape[-1]
    scale, shift = gate_scale(h)
    a = jnp.tanh(z * scale) * scale + shift
    c = a[:, h:2 * h] * c + a[:, :h] * a[:, 2 * h:3 * h]
    return a[:, 3 * h:] * jnp.tanh(c), c


def scan_layer(cell: Callable[..., Any], w: Array, gi: Array, h0: Array, c0: Array) -> Any:
    def body(carry: Any, g: Array) -> Any:
        h, c = cell(g + carry[0] @ w.T, carry[1])
        return (h, c), h

    return jax.lax.scan(body, (h0, c0), gi)


# ---- the port's formulation (one example, masked) and a hand-written backward


def one_autodiff(w_ih: Array, w_hh: Array, b: Array, xs: Array, valid: Array, h0: Array, c0: Array) -> Any:
    def body(carry: Any, x: Any) -> Any:
        inp, ok = x
        h, c = carry
        hn, cn = cell_sliced((w_ih @ inp + w_hh @ h + b)[None], c[None])
        carry = (jnp.where(ok, hn[0], h), jnp.where(ok, cn[0], c))
        return carry, carry[0]

    (h, c), hs = jax.lax.scan(body, (h0, c0), (xs, valid))
    return hs, h, c


def _forward(w_ih: Array, w_hh: Array, b: Array, xs: Array, valid: Array, h0: Array, c0: Array) -> Any:
    """Time-major on [T, ...B..., features]: works for one example (no batch axis) and a batch."""
    h = w_hh.shape[1]
    scale, shift = gate_scale(h)
    gi = xs @ w_ih.T + b

    def body(carry: Any, x: Any) -> Any:
        g, ok = x
        hp, cp = carry
        a = jnp.tanh((g + hp @ w_hh.T) * scale) * scale + shift
        cn = a[..., h:2 * h] * cp + a[..., :h] * a[..., 2 * h:3 * h]
        hn = a[..., 3 * h:] * jnp.tanh(cn)
        carry = (jnp.where(ok, hn, hp), jnp.where(ok, cn, cp))
        return carry, (carry[0], carry[1], a)

    (hT, cT), (hs, cs, acts) = jax.lax.scan(body, (h0, c0), (gi, valid))
    return (hs, hT, cT), (w_ih, w_hh, xs, valid, h0, c0, hs, cs, acts)


def _backward(res: Any, ct: Any) -> Any:
    w_ih, w_hh, xs, valid, h0, c0, hs, cs, acts = res
    h = w_hh.shape[1]
    scale, shift = gate_scale(h)
    dhs, dhT, dcT = ct
    hprev = jnp.concatenate([h0[None], hs[:-1]], 0)
    cprev = jnp.concatenate([c0[None], cs[:-1]], 0)

    def body(carry: Any, x: Any) -> Any:
        dh, dc = carry
        dho, a, cp, cn, ok = x
        dh = dh + dho
        tc = jnp.tanh(cn)
        dc2 = dc + dh * a[..., 3 * h:] * (1 - tc * tc)
        da = jnp.concatenate([dc2 * a[..., 2 * h:3 * h], dc2 * cp, dc2 * a[..., :h], dh * tc], -1)
        dz = jnp.where(ok, da * (scale * scale - (a - shift) ** 2), 0)
        return (jnp.where(ok, dz @ w_hh, dh), jnp.where(ok, dc2 * a[..., h:2 * h], dc)), dz

    (dh0, dc0), dzs = jax.lax.scan(body, (dhT, dcT), (dhs, acts, cprev, cs, valid), reverse=True)
    flat = dzs.reshape(-1, dzs.shape[-1])
    return (flat.T @ xs.reshape(-1, xs.shape[-1]), flat.T @ hprev.reshape(-1, h), flat.sum(0), dzs @ w_ih,
            jnp.zeros_like(valid), dh0, dc0)


@jax.custom_vjp
def lstm_vjp(w_ih: Array, w_hh: Array, b: Array, xs: Array, valid: Array, h0: Array, c0: Array) -> Any:
    return _forward(w_ih, w_hh, b, xs, valid, h0, c0)[0]


lstm_vjp.defvjp(_forward, _backward)


def per_example_loss(one: Callable[..., Any], w_ih: Array, w_hh: Array, b: Array, xs: Array, valid: Array,
                     h0: Array, c0: Array) -> Array:
    hs, h, c = jax.vmap(one, in_axes=(None, None, None, 0, 0, 0, 0))(w_ih, w_hh, b, xs, valid, h0, c0)
    return (hs**2).sum() + (h * c).sum()


def batched_loss(w_ih: Array, w_hh: Array, b: Array, xs: Array, valid: Array, h0: Array, c0: Array) -> Array:
    hs, h, c = lstm_vjp(w_ih, w_hh, b, xs.transpose(1, 0, 2), valid.T[..., None], h0, c0)
    return (hs**2).sum() + (h * c).sum()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128, help="rows (default 128)")
    p.add_argument("--time", type=int, default=100, help="steps (default 100)")
    p.add_argument("--hidden", type=int, default=128, help="hidden size = input width (default 128)")
    a = p.parse_args()
    b_, t_, h_ = a.batch, a.time, a.hidden
    k = jax.random.split(jax.random.PRNGKey(0), 6)
    w = jax.random.normal(k[0], (4 * h_, h_)) * 0.1
    gi = jax.random.normal(k[1], (t_, b_, 4 * h_))
    h0, c0 = jnp.zeros((b_, h_)), jnp.zeros((b_, h_))
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; one LSTM layer, batch {b_}, {t_} steps, hidden {h_}")
    print(f"{'matrix products only':44s} {median_ms(lambda w, g, h: scan_layer(lambda z, c: (z[:, :h_], c), w, g, h, h), w, gi, h0):8.2f} ms")  # noqa: E501
    print(f"{'gate nonlinearities only':44s} {median_ms(lambda g, h, c: jax.lax.scan(lambda s, z: (cell_sliced(z + jnp.tile(s[0], 4), s[1]), None), (h, c), g)[0], gi, h0, c0):8.2f} ms")  # noqa: E501
    for name, cell in (("four gate slices", cell_sliced), ("one fused tanh", cell_fused)):
        fwd = partial(scan_layer, cell)
        grad = jax.grad(lambda w, g, h, c, f=fwd: (f(w, g, h, c)[1] ** 2).sum(), argnums=(0, 1))
        print(f"{'forward, ' + name:44s} {median_ms(fwd, w, gi, h0, c0):8.2f} ms")
        print(f"{'forward+backward, ' + name:44s} {median_ms(grad, w, gi, h0, c0):8.2f} ms")
    w_ih, w_hh = jax.random.normal(k[2], (4 * h_, h_)) * 0.1, jax.random.normal(k[3], (4 * h_, h_)) * 0.1
    bias = jax.random.normal(k[4], (4 * h_,)) * 0.1
    xs = jax.random.normal(k[5], (b_, t_, h_))
    lengths = np.random.default_rng(0).integers(t_ // 2, t_ + 1, b_)
    valid = jnp.asarray(np.arange(t_)[None, :] < lengths[:, None])
    args = (w_ih, w_hh, bias, xs, valid, h0 + 0.1, c0 + 0.1)
    argnums = (0, 1, 2, 3, 5, 6)
    ref = jax.grad(partial(per_example_loss, one_autodiff), argnums=argnums)
    want = jax.jit(ref)(*args)
    for name, loss in (("per example, autodiff (the port)", partial(per_example_loss, one_autodiff)),
                       ("per example, custom_vjp", partial(per_example_loss, lstm_vjp)),
                       ("time-major batch, custom_vjp", batched_loss)):
        g = jax.grad(loss, argnums=argnums)
        got = jax.jit(g)(*args)
        rel = max(float(jnp.abs(x - y).max() / jnp.abs(x).max()) for x, y in zip(want, got, strict=True))
        print(f"{'forward+backward, ' + name:44s} {median_ms(g, *args):8.2f} ms  (grad rel. err. {rel:.1e})")


if __name__ == "__main__":
    main()
