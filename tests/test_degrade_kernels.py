"""Blur kernels: normalisation, shape, measured width, sinc frequency response, random draws."""
from __future__ import annotations

import collections
import math

import pytest
import torch

from vidsr.degrade import load_config
from vidsr.degrade.kernels import (KernelParams, gaussian_kernel, generalized_gaussian_kernel, make_kernel,
                                   make_kernels, mesh_grid, pad_kernel, plateau_kernel, pulse_kernel, random_kernel,
                                   random_kernel_params, random_kernel_params_batch, sinc_kernel)
from vidsr.errors import OptionError

ALL = [
    lambda k: gaussian_kernel(k, 1.5),
    lambda k: gaussian_kernel(k, 2.5, 0.7, 0.6),
    lambda k: generalized_gaussian_kernel(k, 1.5, beta=0.6),
    lambda k: generalized_gaussian_kernel(k, 2.0, 1.0, -1.0, beta=3.0),
    lambda k: plateau_kernel(k, 1.5, beta=1.5),
    lambda k: plateau_kernel(k, 2.0, 0.8, 2.0, beta=1.0),
    lambda k: sinc_kernel(k, math.pi / 3),
    lambda k: pulse_kernel(k),
]


def covariance(kernel: torch.Tensor) -> torch.Tensor:
    """Second moments of a kernel as a 2x2 matrix over offsets (x, y)."""
    g = mesh_grid(kernel.shape[-1])
    w = kernel / kernel.sum()
    return torch.einsum("ij,ija,ijb->ab", w, g, g)


@pytest.mark.parametrize("size", [7, 13, 21])
@pytest.mark.parametrize("make", ALL)
def test_kernels_sum_to_one_with_odd_square_shape_and_point_symmetry(make, size: int) -> None:
    k = make(size)
    assert k.shape == (size, size)
    assert k.dtype == torch.float64
    assert k.sum().item() == pytest.approx(1.0, abs=1e-12)
    # Point symmetric: correlation and convolution agree, and the kernel does not shift the image.
    assert torch.allclose(k, k.flip(0, 1), atol=1e-15)
    padded = pad_kernel(k, 21)
    assert padded.shape == (21, 21)
    assert padded.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert padded[10, 10] == k[size // 2, size // 2]


def test_gaussian_measured_sigma_matches_the_parameter() -> None:
    cov = covariance(gaussian_kernel(21, 2.0))
    assert cov[0, 0].item() == pytest.approx(4.0, rel=1e-3)
    assert cov[1, 1].item() == pytest.approx(4.0, rel=1e-3)
    assert abs(cov[0, 1].item()) < 1e-9


def test_anisotropic_gaussian_is_rotated_by_theta() -> None:
    sx, sy, theta = 2.5, 1.0, math.pi / 6
    cov = covariance(gaussian_kernel(21, sx, sy, theta))
    c, s = math.cos(theta), math.sin(theta)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    expected = rot @ torch.diag(torch.tensor([sx**2, sy**2], dtype=torch.float64)) @ rot.T
    assert torch.allclose(cov, expected, rtol=2e-3, atol=2e-3)
    # A quarter turn swaps the axes.
    cov90 = covariance(gaussian_kernel(21, sx, sy, math.pi / 2))
    assert cov90[1, 1].item() == pytest.approx(sx**2, rel=1e-2)
    assert cov90[0, 0].item() == pytest.approx(sy**2, rel=1e-2)


def test_generalized_gaussian_with_beta_one_is_the_gaussian_and_beta_shapes_the_tails() -> None:
    assert torch.allclose(generalized_gaussian_kernel(15, 1.7, 1.2, 0.4, beta=1.0),
                          gaussian_kernel(15, 1.7, 1.2, 0.4), atol=1e-15)
    flat = generalized_gaussian_kernel(21, 2.0, beta=4.0)
    peaky = generalized_gaussian_kernel(21, 2.0, beta=0.5)
    # beta > 1: flatter top (centre and one pixel over nearly equal); beta < 1: sharp peak.
    assert flat[10, 11] / flat[10, 10] > 0.99
    assert peaky[10, 11] / peaky[10, 10] < 0.8


def test_plateau_has_heavier_tails_than_the_gaussian_of_the_same_sigma() -> None:
    p, g = plateau_kernel(21, 1.5, beta=1.0), gaussian_kernel(21, 1.5)
    assert p[10, 20] > 100 * g[10, 20]


def radial_response(kernel: torch.Tensor, omega: float) -> float:
    """|H| of the kernel at radial frequency omega, averaged over directions."""
    g = mesh_grid(kernel.shape[-1])
    vals = []
    for phi in torch.linspace(0, math.pi, 9)[:-1].tolist():
        w = torch.tensor([math.cos(phi), math.sin(phi)], dtype=torch.float64) * omega
        phase = (g * w).sum(-1)
        vals.append(abs(complex((kernel * torch.cos(phase)).sum().item(), (kernel * torch.sin(phase)).sum().item())))
    return sum(vals) / len(vals)


@pytest.mark.parametrize("omega", [math.pi / 3, math.pi / 2, 0.8 * math.pi])
def test_sinc_frequency_response_falls_off_at_its_cutoff(omega: float) -> None:
    k = sinc_kernel(21, omega)
    assert radial_response(k, 0.0) == pytest.approx(1.0, abs=1e-9)
    assert radial_response(k, 0.6 * omega) > 0.9  # pass band
    assert 0.25 < radial_response(k, omega) < 0.75  # the edge, smeared by truncation
    stop = min(1.35 * omega, math.pi)
    assert radial_response(k, stop) < 0.12  # stop band
    # Ringing: an ideal low-pass has negative lobes.
    assert k.min().item() < 0


def test_make_kernel_rebuilds_from_params_and_rejects_bad_sizes() -> None:
    p = KernelParams(kind="plateau_aniso", size=9, sigma_x=2.0, sigma_y=1.0, theta=0.3, beta=1.5)
    k = make_kernel(p)
    assert k.shape == (21, 21)
    assert torch.equal(make_kernel(p, pad_to=None), plateau_kernel(9, 2.0, 1.0, 0.3, 1.5))
    with pytest.raises(OptionError):
        gaussian_kernel(8, 1.0)
    with pytest.raises(OptionError):
        pad_kernel(gaussian_kernel(23, 1.0), 21)


def test_random_kernels_follow_the_real_esrgan_distribution() -> None:
    cfg = load_config("realesrgan_video").first_order.blur
    g = torch.Generator().manual_seed(0)
    kinds: collections.Counter[str] = collections.Counter()
    sizes: set[int] = set()
    n = 3000
    for _ in range(n):
        p = random_kernel_params(g, cfg)
        kinds[p.kind] += 1
        sizes.add(p.size)
        if p.kind == "sinc":
            assert p.omega is not None
            lo, hi = cfg.sinc_omega_small if p.size < 13 else cfg.sinc_omega_large
            assert lo * math.pi <= p.omega <= hi * math.pi
        else:
            assert p.sigma_x is not None and cfg.sigma[0] <= p.sigma_x <= cfg.sigma[1]
            if p.kind in ("iso", "generalized_iso", "plateau_iso"):
                assert p.sigma_y == p.sigma_x and p.theta == 0.0
            if p.kind.startswith("plateau"):
                assert p.beta is not None and cfg.beta_plateau[0] <= p.beta <= cfg.beta_plateau[1]
    assert sizes == set(range(7, 22, 2))
    assert kinds["sinc"] / n == pytest.approx(0.1, abs=0.025)
    for kind, prob in cfg.kernel_probs.items():
        assert kinds[kind] / n == pytest.approx(0.9 * prob, abs=0.03), kind
    k, _ = random_kernel(g, cfg)
    assert k.shape == (21, 21) and k.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_batch_draws_follow_the_same_distribution() -> None:
    cfg = load_config("realesrgan_video").first_order.blur
    n = 3000
    params = random_kernel_params_batch(torch.Generator().manual_seed(0), cfg, n)
    kinds = collections.Counter(p.kind for p in params)
    assert {p.size for p in params} == set(range(7, 22, 2))
    assert kinds["sinc"] / n == pytest.approx(0.1, abs=0.025)
    for kind, prob in cfg.kernel_probs.items():
        assert kinds[kind] / n == pytest.approx(0.9 * prob, abs=0.03), kind
    for p in params:
        if p.kind == "sinc":
            assert p.omega is not None
            lo, hi = cfg.sinc_omega_small if p.size < 13 else cfg.sinc_omega_large
            assert lo * math.pi <= p.omega <= hi * math.pi
            continue
        assert p.sigma_x is not None and p.sigma_y is not None
        assert cfg.sigma[0] <= p.sigma_x <= cfg.sigma[1] and cfg.sigma[0] <= p.sigma_y <= cfg.sigma[1]
        if not p.kind.endswith("aniso"):
            assert p.sigma_y == p.sigma_x and p.theta == 0.0
        if p.kind.startswith("generalized"):
            assert p.beta is not None and cfg.beta_gaussian[0] <= p.beta <= cfg.beta_gaussian[1]
        elif p.kind.startswith("plateau"):
            assert p.beta is not None and cfg.beta_plateau[0] <= p.beta <= cfg.beta_plateau[1]
        else:
            assert p.beta is None
    betas = [p.beta for p in params if p.kind.startswith("generalized")]
    assert sum(b < 1 for b in betas) / len(betas) == pytest.approx(0.5, abs=0.1)  # type: ignore[operator]
    # Same generator state, same draws.
    again = random_kernel_params_batch(torch.Generator().manual_seed(0), cfg, n)
    assert again == params


def test_make_kernels_equals_make_kernel_for_every_kind() -> None:
    params = [
        KernelParams(kind="iso", size=7, sigma_x=0.3, sigma_y=0.3, theta=0.0),
        KernelParams(kind="aniso", size=21, sigma_x=3.0, sigma_y=0.4, theta=1.1),
        KernelParams(kind="generalized_iso", size=11, sigma_x=1.5, sigma_y=1.5, theta=0.0, beta=0.5),
        KernelParams(kind="generalized_aniso", size=13, sigma_x=2.0, sigma_y=1.0, theta=-2.0, beta=4.0),
        KernelParams(kind="plateau_iso", size=9, sigma_x=1.0, sigma_y=1.0, theta=0.0, beta=1.0),
        KernelParams(kind="plateau_aniso", size=19, sigma_x=2.5, sigma_y=0.7, theta=0.4, beta=2.0),
        KernelParams(kind="sinc", size=15, omega=math.pi / 4),
        KernelParams(kind="sinc", size=7, omega=math.pi),
        KernelParams(kind="pulse", size=21),
    ]
    stack = make_kernels(params)
    assert stack.shape == (len(params), 21, 21) and stack.dtype == torch.float64
    for p, k in zip(params, stack):
        assert torch.allclose(k, make_kernel(p, pad_to=21), rtol=0, atol=1e-15), p.kind
    assert make_kernels(params[:1], size=9).shape == (1, 9, 9)
    with pytest.raises(OptionError):
        make_kernels(params, size=19)
    with pytest.raises(OptionError):
        make_kernels([KernelParams(kind="iso", size=7, sigma_x=0.0, sigma_y=0.0, theta=0.0)])
    with pytest.raises(OptionError):
        make_kernels([KernelParams(kind="sinc", size=7, omega=4.0)])
