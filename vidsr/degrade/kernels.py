"""Blur kernels of Real-ESRGAN's degradation model.

Every kernel is a float64 tensor of shape ``[k, k]`` with ``k`` odd, centred on
``(k // 2, k // 2)`` and summing to 1. Coordinates follow Real-ESRGAN: ``x`` runs along
columns, ``y`` along rows, and an anisotropic kernel has standard deviations
``sigma_x``/``sigma_y`` along its own axes, rotated by ``theta`` radians.

Random kernels come from :func:`random_kernel_params`, which draws exactly the
distribution of Real-ESRGAN's ``random_mixed_kernels`` plus its sinc branch, and are
built by :func:`make_kernel`; the parameters are kept so that a draw can be inspected
and rebuilt.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from vidsr.degrade import _random
from vidsr.degrade.degradation_config import BlurConfig
from vidsr.errors import OptionError

KernelKind = Literal["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso",
                     "sinc", "pulse"]

#: Real-ESRGAN pads every kernel to this side so that a batch of them stacks.
PAD_TO = 21


def _check_size(size: int) -> None:
    if size < 1 or size % 2 == 0:
        raise OptionError(f"kernel size must be a positive odd number, got {size}")


def mesh_grid(size: int) -> torch.Tensor:
    """``[size, size, 2]`` float64 offsets ``(x, y)`` from the centre pixel."""
    _check_size(size)
    ax = torch.arange(size, dtype=torch.float64) - size // 2
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return torch.stack((xx, yy), dim=-1)


def _mahalanobis2(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """Squared Mahalanobis distance ``d^T S^-1 d`` of each offset, with S = R diag(sx^2, sy^2) R^T."""
    if sigma_x <= 0 or sigma_y <= 0:
        raise OptionError(f"kernel sigmas must be positive, got {sigma_x}, {sigma_y}")
    c, s = math.cos(theta), math.sin(theta)
    grid = mesh_grid(size)
    # Offsets in the kernel's own (rotated) frame: R^T d.
    u = c * grid[..., 0] + s * grid[..., 1]
    v = -s * grid[..., 0] + c * grid[..., 1]
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalised(kernel: torch.Tensor) -> torch.Tensor:
    return kernel / kernel.sum()


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> torch.Tensor:
    """Bivariate Gaussian; isotropic when ``sigma_y`` is None."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    return _normalised(torch.exp(-0.5 * _mahalanobis2(size, sigma_x, sigma_y, theta)))


def generalized_gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0,
                                beta: float = 1.0) -> torch.Tensor:
    """``exp(-0.5 (d^T S^-1 d)^beta)``: flatter top than a Gaussian for beta > 1, peakier below."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    return _normalised(torch.exp(-0.5 * _mahalanobis2(size, sigma_x, sigma_y, theta) ** beta))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0,
                   beta: float = 1.0) -> torch.Tensor:
    """``1 / (1 + (d^T S^-1 d)^beta)``: a plateau with heavy tails."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    return _normalised(1.0 / (_mahalanobis2(size, sigma_x, sigma_y, theta) ** beta + 1.0))


def sinc_kernel(size: int, omega: float) -> torch.Tensor:
    """2-D circular low-pass ("sinc") kernel with cutoff ``omega`` radians per pixel (pi: Nyquist).

    The ideal circular low-pass filter has impulse response ``omega J1(omega r) / (2 pi r)``;
    truncating it to ``size`` makes the ringing that Real-ESRGAN uses to imitate
    over-sharpened and resampled footage.
    """
    _check_size(size)
    if not 0 < omega <= math.pi:
        raise OptionError(f"sinc cutoff must be in (0, pi], got {omega}")
    r = mesh_grid(size).norm(dim=-1)
    safe_r = torch.where(r == 0, torch.ones_like(r), r)
    kernel = omega * torch.special.bessel_j1(omega * safe_r) / (2 * math.pi * safe_r)
    # The limit of J1(w r) / r at r = 0 is w / 2.
    kernel[size // 2, size // 2] = omega**2 / (4 * math.pi)
    return _normalised(kernel)


def pulse_kernel(size: int = PAD_TO) -> torch.Tensor:
    """Identity kernel: a 1 at the centre."""
    _check_size(size)
    kernel = torch.zeros(size, size, dtype=torch.float64)
    kernel[size // 2, size // 2] = 1.0
    return kernel


def pad_kernel(kernel: torch.Tensor, size: int = PAD_TO) -> torch.Tensor:
    """Zero-pad a centred odd kernel to ``size``; a kernel already that large is returned as is."""
    k = kernel.shape[-1]
    _check_size(size)
    if k > size:
        raise OptionError(f"cannot pad a {k}x{k} kernel to {size}x{size}")
    p = (size - k) // 2
    return torch.nn.functional.pad(kernel, (p, p, p, p))


@dataclass(frozen=True)
class KernelParams:
    """One drawn kernel: enough to rebuild it exactly with :func:`make_kernel`."""

    kind: KernelKind
    size: int
    sigma_x: float | None = None
    sigma_y: float | None = None
    theta: float | None = None  #: radians
    beta: float | None = None
    omega: float | None = None  #: sinc cutoff in radians per pixel


def make_kernel(params: KernelParams, pad_to: int | None = PAD_TO) -> torch.Tensor:
    """Build the ``[k, k]`` float64 kernel described by ``params``, zero-padded to ``pad_to`` if given."""
    p = params
    if p.kind == "sinc":
        assert p.omega is not None
        kernel = sinc_kernel(p.size, p.omega)
    elif p.kind == "pulse":
        kernel = pulse_kernel(p.size)
    else:
        assert p.sigma_x is not None and p.sigma_y is not None and p.theta is not None
        if p.kind in ("iso", "aniso"):
            kernel = gaussian_kernel(p.size, p.sigma_x, p.sigma_y, p.theta)
        elif p.kind.startswith("generalized"):
            assert p.beta is not None
            kernel = generalized_gaussian_kernel(p.size, p.sigma_x, p.sigma_y, p.theta, p.beta)
        elif p.kind.startswith("plateau"):
            assert p.beta is not None
            kernel = plateau_kernel(p.size, p.sigma_x, p.sigma_y, p.theta, p.beta)
        else:
            raise OptionError(f"unknown kernel kind {p.kind!r}")
    return kernel if pad_to is None else pad_kernel(kernel, pad_to)


def _draw_beta(g: torch.Generator, beta_range: tuple[float, float]) -> float:
    # Real-ESRGAN draws the shape below and above 1 with equal chance, so that both the
    # peaky (beta < 1) and flat-topped (beta > 1) families are seen as often whatever the range.
    if _random.bernoulli(g, 0.5):
        return _random.uniform(g, beta_range[0], 1.0)
    return _random.uniform(g, 1.0, beta_range[1])


def random_sinc_params(g: torch.Generator, size: int, omega_pi: tuple[float, float]) -> KernelParams:
    """A sinc kernel of the given side with cutoff drawn in ``omega_pi`` (units of pi)."""
    omega = math.pi * _random.uniform(g, *omega_pi)
    return KernelParams(kind="sinc", size=size, omega=omega)


def random_kernel_params(g: torch.Generator, cfg: BlurConfig) -> KernelParams:
    """Draw one blur kernel the way Real-ESRGAN's dataset does (size, sinc or mixed kernel)."""
    size = _random.odd_size(g, cfg.sizes)
    if _random.bernoulli(g, cfg.sinc_prob):
        # Small kernels cannot represent low cutoffs without severe truncation, hence the two ranges.
        omega_pi = cfg.sinc_omega_small if size < 13 else cfg.sinc_omega_large
        return random_sinc_params(g, size, omega_pi)
    kind: KernelKind = _random.weighted_choice(g, cfg.kernel_probs)  # type: ignore[assignment]
    sigma_x = _random.uniform(g, *cfg.sigma)
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sigma_y, theta = sigma_x, 0.0
    else:
        sigma_y = _random.uniform(g, *cfg.sigma)
        theta = _random.uniform(g, -math.pi, math.pi)
    beta = None
    if kind.startswith("generalized"):
        beta = _draw_beta(g, cfg.beta_gaussian)
    elif kind.startswith("plateau"):
        beta = _draw_beta(g, cfg.beta_plateau)
    return KernelParams(kind=kind, size=size, sigma_x=sigma_x, sigma_y=sigma_y, theta=theta, beta=beta)


def random_kernel(g: torch.Generator, cfg: BlurConfig, pad_to: int = PAD_TO) -> tuple[torch.Tensor, KernelParams]:
    """Draw and build one kernel, padded to ``pad_to`` as Real-ESRGAN batches them."""
    params = random_kernel_params(g, cfg)
    return make_kernel(params, pad_to), params


# --- many kernels at once (the batched pipeline) ---

_BETA_KINDS = ("generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


def random_kernel_params_batch(g: torch.Generator, cfg: BlurConfig, n: int) -> list[KernelParams]:
    """``n`` kernels drawn from the distribution of :func:`random_kernel_params`, in a few tensor draws.

    The same distribution, not the same stream: every quantity is drawn for every kernel
    (and ignored where unused), so that the generator advances by a fixed amount.
    """
    if n == 0:
        return []
    u = torch.rand(n, 9, generator=g, dtype=torch.float64)
    lo, hi = cfg.sizes
    steps = (hi - lo) // 2 + 1
    size = lo + 2 * (u[:, 0] * steps).floor().clamp(max=steps - 1)
    sinc = u[:, 1] < cfg.sinc_prob
    small = size < 13
    om_small = torch.tensor(cfg.sinc_omega_small, dtype=torch.float64)
    om_large = torch.tensor(cfg.sinc_omega_large, dtype=torch.float64)
    om_lo = torch.where(small, om_small[0], om_large[0])
    om_hi = torch.where(small, om_small[1], om_large[1])
    omega = math.pi * (om_lo + (om_hi - om_lo) * u[:, 2])
    names = list(cfg.kernel_probs)
    probs = torch.tensor([cfg.kernel_probs[k] for k in names], dtype=torch.float64)
    kind = torch.searchsorted(probs.cumsum(0), u[:, 3:4] * probs.sum(), right=True).reshape(-1)
    # As _random.weighted_choice: a draw that lands on the total through rounding takes the last possible kind.
    last = max(i for i, p in enumerate(probs.tolist()) if p > 0)
    kind = kind.clamp(max=last)
    s_lo, s_hi = cfg.sigma
    sigma_x = s_lo + (s_hi - s_lo) * u[:, 4]
    sigma_y = s_lo + (s_hi - s_lo) * u[:, 5]
    theta = -math.pi + 2 * math.pi * u[:, 6]
    below = u[:, 7] < 0.5  # as _draw_beta: below or above 1 with equal chance
    betas = {}
    for family, (b_lo, b_hi) in (("generalized", cfg.beta_gaussian), ("plateau", cfg.beta_plateau)):
        betas[family] = torch.where(below, b_lo + (1.0 - b_lo) * u[:, 8], 1.0 + (b_hi - 1.0) * u[:, 8]).tolist()
    out = []
    rows = zip(size.long().tolist(), sinc.tolist(), omega.tolist(), kind.tolist(), sigma_x.tolist(),
               sigma_y.tolist(), theta.tolist(), betas["generalized"], betas["plateau"])
    for k, is_sinc, om, ki, sx, sy, th, b_gen, b_plat in rows:
        if is_sinc:
            out.append(KernelParams(kind="sinc", size=k, omega=om))
            continue
        name: KernelKind = names[ki]  # type: ignore[assignment]
        if not name.endswith("aniso"):
            sy, th = sx, 0.0
        beta = b_gen if name.startswith("generalized") else b_plat if name.startswith("plateau") else None
        out.append(KernelParams(kind=name, size=k, sigma_x=sx, sigma_y=sy, theta=th, beta=beta))
    return out


_FAMILY = {"iso": 0, "aniso": 0, "generalized_iso": 1, "generalized_aniso": 1, "plateau_iso": 2,
           "plateau_aniso": 2, "sinc": 3, "pulse": 4}


def _exp_neg_half(m: torch.Tensor) -> torch.Tensor:
    """``exp(-m / 2)``, flushed to 0 below 1e-304: rows of other kernel families hold huge ``m``,
    and exp's denormal results cost a hundred times a normal one."""
    return torch.where(m < 1400, torch.exp(-0.5 * m.clamp(max=1400)), 0.0)


@functools.cache
def _polar_grid(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x and y offsets from the centre and their norm, ``[size, size]`` each (cached: never written to)."""
    grid = mesh_grid(size)
    return grid[..., 0], grid[..., 1], grid.norm(dim=-1)


def make_kernels(params: Sequence[KernelParams], size: int | None = None) -> torch.Tensor:
    """Build many kernels at once: ``[n, size, size]`` float64, each zero-padded to ``size``.

    ``size`` defaults to the largest kernel's side. Each kernel equals
    ``make_kernel(params[i], pad_to=size)`` up to float64 rounding, built with a few tensor
    operations for the whole list instead of a dozen per kernel.
    """
    if not params:
        raise OptionError("make_kernels needs at least one kernel")
    k = max(p.size for p in params) if size is None else size
    _check_size(k)
    rows = []
    for p in params:
        _check_size(p.size)
        if p.size > k:
            raise OptionError(f"cannot pad a {p.size}x{p.size} kernel to {k}x{k}")
        fam = _FAMILY.get(p.kind)
        if fam is None:
            raise OptionError(f"unknown kernel kind {p.kind!r}")
        if fam <= 2:
            if p.sigma_x is None or p.sigma_y is None or p.theta is None:
                raise OptionError(f"{p.kind} kernel needs sigma_x, sigma_y and theta")
            if p.sigma_x <= 0 or p.sigma_y <= 0:
                raise OptionError(f"kernel sigmas must be positive, got {p.sigma_x}, {p.sigma_y}")
            if fam > 0 and p.beta is None:
                raise OptionError(f"{p.kind} kernel needs beta")
        if fam == 3 and (p.omega is None or not 0 < p.omega <= math.pi):
            raise OptionError(f"sinc cutoff must be in (0, pi], got {p.omega}")
        rows.append((fam, p.size // 2, p.sigma_x or 1.0, p.sigma_y or 1.0, p.theta or 0.0, p.beta or 1.0,
                     p.omega or math.pi))
    families = {row[0] for row in rows}
    t = torch.tensor(rows, dtype=torch.float64)[:, :, None, None]  # [n, 7, 1, 1]
    fam, half, sx, sy, theta, beta, omega = t.unbind(1)
    gx, gy, r = _polar_grid(k)
    kernel = (r == 0).to(torch.float64).expand(len(rows), k, k)  # pulse; the other families replace it
    # Each formula only for the families present: a batch seldom has all five.
    if families & {0, 1, 2}:
        c, s = torch.cos(theta), torch.sin(theta)
        m2 = ((c * gx + s * gy) / sx) ** 2 + ((-s * gx + c * gy) / sy) ** 2
        if 0 in families:
            kernel = torch.where(fam == 0, _exp_neg_half(m2), kernel)
        if families & {1, 2}:
            m2b = m2**beta
            if 1 in families:
                kernel = torch.where(fam == 1, _exp_neg_half(m2b), kernel)
            if 2 in families:
                kernel = torch.where(fam == 2, 1.0 / (m2b + 1.0), kernel)
    if 3 in families:
        safe_r = torch.where(r == 0, torch.ones_like(r), r)
        sinc = torch.where(r == 0, omega**2 / (4 * math.pi),
                           omega * torch.special.bessel_j1(omega * safe_r) / (2 * math.pi * safe_r))
        kernel = torch.where(fam == 3, sinc, kernel)
    kernel = kernel * ((gx.abs() <= half) & (gy.abs() <= half))
    return kernel / kernel.sum(dim=(-2, -1), keepdim=True)
