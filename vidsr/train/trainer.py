"""One training stage: the networks, their optimisers, the stream of pairs, and the loop.

:class:`Trainer` runs one stage (tests and scripts drive it directly); the whole run, its
stages in order, is :func:`vidsr.train.run_stages.train`. Under torchrun every rank runs a
Trainer with DDP-wrapped networks (process_group.py); rank 0 validates, logs and writes the
shared part of checkpoints. Ctrl-C is turned into a stop after the step (stop_signal.py).
"""
from __future__ import annotations

import bisect
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidsr.degrade import DegradationConfig, load_config, usm_sharpen
from vidsr.degrade.codec_pool import usable_cores
from vidsr.engine.device import pick_device
from vidsr.errors import InputError, ModelError
from vidsr.models import read_state_dict
from vidsr.train import checkpoint as ckpt
from vidsr.train.data import PatchSampler, find_media, make_sources, seed_for, split_holdout
from vidsr.train.degrade_feed import DegradationFeed, PairStream, ShufflePool, resolve_device
from vidsr.train.discriminator import UNetDiscriminatorSN
from vidsr.train.ema import ModelEMA
from vidsr.train.export import export_generator
from vidsr.train.generator import build_generator, load_into, pretrained_state_dict
from vidsr.train.gpu_util import UtilizationSampler
from vidsr.train.losses import PerceptualLoss, gan_loss, load_vgg19_state_dict
from vidsr.train.process_group import DistInfo, any_rank, barrier
from vidsr.train.results import StageResult
from vidsr.train.run_log import append_record, utc_now
from vidsr.train.stop_signal import StopRequest
from vidsr.train.train_config import StageConfig, TrainConfig
from vidsr.train.validate import ValPairs, bicubic, make_val_pairs, run_net, score, write_samples

log = logging.getLogger(__name__)

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
VAL_PAIRS = "val_pairs.pt"  #: the held-out pairs of a run, made once, in its folder
DONE = "done.json"  #: written into a stage's folder when the stage has run all its steps


class Trainer:
    """One stage: networks, optimisers, the pair stream, and the loop.

    ``init`` is the generator's starting weights ``(state_dict, source)``; without it the
    config's ``network.pretrained`` is loaded, or the net starts from scratch. With
    ``resume``, the newest checkpoint of this stage (if any) restores everything.
    """

    def __init__(self, config: TrainConfig, stage: StageConfig | str, out_dir: Path, *,
                 device: torch.device | str = "auto", dist: DistInfo | None = None,
                 vgg_weights: str | Path | None = None, vgg_state: Mapping[str, torch.Tensor] | None = None,
                 init: tuple[Mapping[str, torch.Tensor], str] | None = None, resume: bool = False,
                 sampler: PatchSampler | None = None, degradation: DegradationConfig | None = None,
                 val_pairs: ValPairs | None = None, progress: bool = False) -> None:
        self.config = config
        self.stage = config.stage(stage) if isinstance(stage, str) else stage
        self.out_dir = Path(out_dir)
        self.stage_dir = self.out_dir / self.stage.name
        self.ckpt_dir = self.stage_dir / "checkpoints"
        self.device = resolve_device(pick_device(device) if isinstance(device, str) else device)
        self.dist = dist or DistInfo()
        self.progress = progress
        self.step = 0
        self.elapsed = 0.0  # training seconds over all sessions of this stage
        self.last_validation: dict[str, float] | None = None
        self._logged_bicubic = False  # the baseline goes into the log once per session
        losses = self.stage.losses
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.set_device(self.device)
        self.amp_dtype = _AMP_DTYPES.get(self.stage.amp) if cuda else None
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format

        # Perceptual loss first: a missing VGG fails before any data is touched.
        self.perceptual: PerceptualLoss | None = None
        if losses.perceptual > 0:
            state = vgg_state if vgg_state is not None else load_vgg19_state_dict(vgg_weights)
            self.perceptual = PerceptualLoss(losses.perceptual_layers, state)
            self.perceptual.to(self.device, memory_format=self.memory_format)

        g = build_generator(config.network)
        if init is None and config.network.pretrained:
            init = (pretrained_state_dict(config.network.pretrained), config.network.pretrained)
        if init is not None:
            load_into(g, init[0], init[1])
        self.g_module = g.to(self.device, memory_format=self.memory_format)
        self.ema = ModelEMA(self.g_module, self.stage.ema_decay)

        self.d_module: nn.Module | None = None
        if self.stage.uses_gan:
            dcfg = config.discriminator
            d = UNetDiscriminatorSN(3, dcfg.num_feat, dcfg.skip_connection)
            if dcfg.pretrained:
                load_into(d, _read_state_dict(Path(dcfg.pretrained)), f"discriminator {dcfg.pretrained}")
            self.d_module = d.to(self.device, memory_format=self.memory_format)

        self.g: nn.Module = self.g_module
        self.d: nn.Module | None = self.d_module
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if cuda else None
            self.g = DDP(self.g_module, device_ids=ids)
            if self.d_module is not None:
                self.d = DDP(self.d_module, device_ids=ids)

        betas = tuple(self.stage.betas)
        self.opt_g = torch.optim.Adam(self.g_module.parameters(), lr=self.stage.lr_g, betas=betas)  # type: ignore[arg-type]
        self.opt_d = (torch.optim.Adam(self.d_module.parameters(), lr=self.stage.lr_d, betas=betas)  # type: ignore[arg-type]
                      if self.d_module is not None else None)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cuda and self.stage.amp == "fp16")

        self._sampler = sampler
        self._degradation = degradation
        self._val_pairs = val_pairs
        self._pairs: PairStream | None = None
        self._feed_start = 0
        self._pool_state: Mapping[str, Any] | None = None
        if resume:
            self._resume()

    # --- data ---

    @property
    def degradation(self) -> DegradationConfig:
        if self._degradation is None:
            self._degradation = load_config(self.config.feed.degradation)
        return self._degradation

    def _default_samplers(self) -> tuple[PatchSampler, PatchSampler]:
        files = find_media(self.config.data.paths)
        train_files, held = split_holdout(files, self.config.data.holdout)
        cache = self.config.data.cache_images
        train = PatchSampler(make_sources(train_files, cache_images=cache), self.config.data)
        val = PatchSampler(make_sources(held, cache_images=cache), self.config.data) if held else train
        return train, val

    @property
    def sampler(self) -> PatchSampler:
        if self._sampler is None:
            self._sampler = self._default_samplers()[0]
        return self._sampler

    def pairs(self) -> PairStream:
        """The stream of training batches (started on first use)."""
        if self._pairs is None:
            cfg = self.config
            fresh = cfg.feed.fresh_per_step or self.stage.batch_size
            workers = cfg.feed.codec_workers
            if workers is None:  # the machine's cores, shared by the ranks on it
                workers = max(1, usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
            feed = DegradationFeed(
                self.sampler, self.degradation, scale=cfg.network.scale, chunk=fresh, device=self.device,
                seed=seed_for(cfg.seed, self.stage.name), rank=self.dist.rank, threads=cfg.feed.threads,
                codec_workers=workers, codec_pool=cfg.feed.codec_pool, prefetch=cfg.feed.prefetch,
                load_threads=cfg.data.load_threads, start=self._feed_start)
            pool = ShufflePool(cfg.feed.pool_size, seed=seed_for(cfg.seed, self.stage.name, self.dist.rank, 2))
            if self._pool_state is not None:
                pool.load_state_dict(self._pool_state, self.device)
            self._pairs = PairStream(feed, pool, self.stage.batch_size)
        return self._pairs

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gt, lr)`` float in [0, 1] on the device."""
        return self.pairs().next()

    @property
    def val_pairs(self) -> ValPairs:
        if self._val_pairs is None:
            path = self.out_dir / VAL_PAIRS
            if path.is_file():
                self._val_pairs = ValPairs.load(path)
            else:
                val_sampler = self._default_samplers()[1]
                self._val_pairs = make_val_pairs(val_sampler, self.degradation, self.config.validation,
                                                 scale=self.config.network.scale, device=self.device)
                if self.dist.main:
                    self.out_dir.mkdir(parents=True, exist_ok=True)
                    self._val_pairs.save(path)
        return self._val_pairs

    # --- one step ---

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def lr_factor(self, step: int) -> float:
        return self.stage.lr_gamma ** bisect.bisect_right(self.stage.lr_milestones, step)

    def train_step(self, gt: torch.Tensor, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimiser step of G (and D) on a batch; returns the detached losses."""
        st, w = self.stage, self.stage.losses
        factor = self.lr_factor(self.step)
        for group in self.opt_g.param_groups:
            group["lr"] = st.lr_g * factor
        if self.opt_d is not None:
            for group in self.opt_d.param_groups:
                group["lr"] = (st.lr_d or 0.0) * factor
        gt = gt.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        lr = lr.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        wants_usm = (w.l1 > 0 and w.l1_usm) or (w.perceptual > 0 and w.perceptual_usm) or (w.gan > 0 and w.gan_usm)
        gt_usm = usm_sharpen(gt).contiguous(memory_format=self.memory_format) if wants_usm else gt

        self.g.train()
        out: dict[str, torch.Tensor] = {}
        total = gt.new_zeros((), dtype=torch.float32)
        with self._autocast():
            sr = self.g(lr)
        if w.l1 > 0:
            out["l1"] = F.l1_loss(sr.float(), gt_usm if w.l1_usm else gt)
            total = total + w.l1 * out["l1"]
        if self.perceptual is not None:
            with self._autocast():
                out["perceptual"] = self.perceptual(sr, gt_usm if w.perceptual_usm else gt)
            total = total + w.perceptual * out["perceptual"]
        if self.d_module is not None:
            self.d_module.requires_grad_(False)
            with self._autocast():
                out["gan"] = gan_loss(self.d_module(sr), real=True)  # D frozen: only G learns here
            total = total + w.gan * out["gan"]
        out["g_total"] = total
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt_g)

        if self.d is not None and self.d_module is not None and self.opt_d is not None:
            self.d_module.requires_grad_(True)
            self.d.train()
            real = gt_usm if w.gan_usm else gt
            n = real.shape[0]
            with self._autocast():
                logits = self.d(torch.cat([real, sr.detach()]))
            out["d_real"] = gan_loss(logits[:n], real=True)
            out["d_fake"] = gan_loss(logits[n:], real=False)
            out["d_real_logit"] = logits[:n].detach().float().mean()
            out["d_fake_logit"] = logits[n:].detach().float().mean()
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler.scale(out["d_real"] + out["d_fake"]).backward()
            self.scaler.step(self.opt_d)

        self.scaler.update()
        self.ema.update(self.g_module)
        self.step += 1
        return {k: v.detach() for k, v in out.items()}

    # --- validation ---

    def validate(self) -> dict[str, float]:
        """Score the EMA generator on the held-out pairs and write a sample image (rank 0)."""
        pairs = self.val_pairs
        scale = self.config.network.scale
        net = self.ema.module.eval()
        out = run_net(net, pairs.lr, device=self.device, batch=max(1, self.stage.batch_size))
        scores = score(out, pairs.gt, crop_border=scale)
        samples_dir = self.stage_dir / "samples"
        samples_dir.mkdir(parents=True, exist_ok=True)
        sample = write_samples(samples_dir / f"step_{self.step:08d}.png", pairs, out, scale=scale,
                               count=self.config.validation.samples)
        self.last_validation = scores
        record: dict[str, Any] = {"event": "val", "time": utc_now(), "stage": self.stage.name, "step": self.step,
                                  **scores}
        if sample is not None:
            record["sample"] = str(sample)
        if not self._logged_bicubic:
            record["bicubic"] = score(bicubic(pairs.lr, scale), pairs.gt, crop_border=scale)
            self._logged_bicubic = True
        self._log(record)
        return scores

    # --- checkpoints ---

    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the current step (every rank writes its pool) and mark it latest."""
        if self.dist.main:
            state = {
                "version": 1, "stage": self.stage.name, "step": self.step, "elapsed": self.elapsed,
                "net_g": self.g_module.state_dict(), "net_g_ema": self.ema.state_dict(),
                "net_d": self.d_module.state_dict() if self.d_module is not None else None,
                "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
                "scaler": self.scaler.state_dict(), "rng": ckpt.rng_state(),
            }
            ckpt.save_state(self.ckpt_dir, self.step, state)
        if self._pairs is not None:
            feed_state = self._pairs.state_dict()
        else:
            feed_state = {"next_index": self._feed_start, "pool": self._pool_state}
        ckpt.save_feed(self.ckpt_dir, self.step, self.dist.rank, feed_state)
        barrier(self.dist)
        if self.dist.main:
            ckpt.mark_latest(self.ckpt_dir, self.step, self.stage.keep_checkpoints)
        barrier(self.dist)
        return ckpt.step_dir(self.ckpt_dir, self.step)

    def _resume(self) -> None:
        d = ckpt.latest(self.ckpt_dir)
        if d is None:
            return
        state = ckpt.load_state(d)
        if state.get("stage") != self.stage.name:
            raise InputError(f"{d} is a checkpoint of stage {state.get('stage')!r}, not {self.stage.name!r}")
        try:
            self.g_module.load_state_dict(state["net_g"])
            self.ema.load_state_dict(state["net_g_ema"])
            if self.d_module is not None:
                if state["net_d"] is None:
                    raise ModelError("the checkpoint has no discriminator")
                self.d_module.load_state_dict(state["net_d"])
        except RuntimeError as exc:
            raise ModelError(f"{d}: the checkpoint does not fit this config's networks: "
                             f"{' '.join(str(exc).split())[:300]}") from None
        self.opt_g.load_state_dict(state["opt_g"])
        if self.opt_d is not None and state["opt_d"] is not None:
            self.opt_d.load_state_dict(state["opt_d"])
        self.scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        feed = ckpt.load_feed(d, self.dist.rank)
        self._feed_start = int(feed["next_index"])
        self._pool_state = feed["pool"]
        log.info("resumed stage %s at step %d from %s", self.stage.name, self.step, d)

    # --- the loop ---

    def _log(self, record: Mapping[str, Any]) -> None:
        if self.dist.main:
            append_record(self.stage_dir / "log.jsonl", record)

    def _rates(self, steps: int, seconds: float, waited: float, gpu: UtilizationSampler) -> dict[str, Any]:
        """One logging interval's throughput: the trainer's, the feed's, the wait between them.

        ``it_s``/``samples_s``: what the run achieved (all ranks). Per rank:
        ``step_samples_s``, the rate the trainer steps at when a batch is ready
        (``data_wait_s`` taken out); ``feed_samples_s``, the rate the feed makes fresh
        pairs with every producer busy (None before it finished a batch in the interval);
        ``feed_vs_step``, their ratio (>= 1: the feed keeps up); ``gpu_util``, the mean
        utilisation in % (None on a CPU or where it cannot be read).
        """
        batch = self.stage.batch_size
        fresh = self.config.feed.fresh_per_step or batch
        seconds = max(seconds, 1e-9)
        stepping = max(seconds - waited, 1e-9)
        feed = self._pairs.feed.stats() if self._pairs is not None else None
        feed_rate = feed.samples_per_s if feed is not None else None
        # The feed makes `fresh` new pairs per step: its rate is compared per step, not per sample drawn.
        step_rate = steps * batch / stepping
        return {"it_s": steps / seconds, "samples_s": steps * batch * self.dist.world / seconds,
                "data_wait_s": waited, "data_wait_frac": waited / seconds, "step_samples_s": step_rate,
                "feed_samples_s": feed_rate,
                "feed_vs_step": None if feed_rate is None else feed_rate / (step_rate * fresh / batch),
                "gpu_util": gpu.interval()}

    def run(self, *, until: int | None = None, time_limit: float | None = None) -> StageResult:
        """Train to ``until`` (default: the stage's steps) or for ``time_limit`` seconds, whichever first.

        Validates and checkpoints on schedule, and at the end; Ctrl-C saves a checkpoint and
        raises :class:`KeyboardInterrupt`. Returns what was done and where the export is.
        """
        from tqdm import tqdm

        st = self.stage
        target = min(st.steps, until) if until is not None else st.steps
        started_at, t0 = utc_now(), time.perf_counter()
        start_step = self.step
        sums: dict[str, torch.Tensor] = {}
        count, t_log, step_log = 0, t0, self.step
        wait_log = wait_total = 0.0
        last_ckpt = last_val = -1
        stopped = interrupted = False
        gpu = UtilizationSampler(self.device)
        bar = tqdm(total=st.steps, initial=self.step, desc=st.name, unit="it", dynamic_ncols=True,
                   disable=not (self.progress and self.dist.main), smoothing=0.05)
        with StopRequest() as stop:
            try:
                while self.step < target:
                    t_wait = time.perf_counter()
                    gt, lr = self.next_batch()
                    waited = time.perf_counter() - t_wait
                    wait_log += waited
                    wait_total += waited
                    losses = self.train_step(gt, lr)
                    for k, v in losses.items():
                        sums[k] = sums[k] + v if k in sums else v.clone()
                    count += 1
                    bar.update(1)
                    at_log = self.step % st.log_every == 0 or self.step == target
                    over_time = time_limit is not None and time.perf_counter() - t0 >= time_limit
                    if not self.dist.enabled and (over_time or stop.requested):
                        at_log = True  # the last, partial interval; under torchrun ranks stop at log steps only
                    if at_log or not self.dist.enabled:
                        if at_log:
                            now = time.perf_counter()
                            means = {k: float(v) / count for k, v in sums.items()}
                            self._log({"event": "train", "time": utc_now(), "stage": st.name, "step": self.step,
                                       "lr_g": st.lr_g * self.lr_factor(self.step - 1),
                                       **self._rates(self.step - step_log, now - t_log, wait_log, gpu), **means})
                            bar.set_postfix(loss=f"{means.get('g_total', math.nan):.4f}", refresh=False)
                            sums, count, t_log, step_log, wait_log = {}, 0, now, self.step, 0.0
                        interrupted, timed_out = any_rank(self.dist, self.device, stop.requested, over_time)
                        stopped = interrupted or timed_out
                    if self.step % st.validate_every == 0 and self.dist.main:
                        self.validate()
                        last_val = self.step
                    if self.step % st.checkpoint_every == 0:
                        self.save_checkpoint()
                        last_ckpt = self.step
                    if stopped:
                        break
            finally:
                bar.close()
                gpu.close()
                self.elapsed += time.perf_counter() - t0
        seconds = time.perf_counter() - t0
        if last_ckpt != self.step and self.step > start_step:
            self.save_checkpoint()
        if interrupted:
            log.warning("interrupted at step %d of stage %s; checkpoint saved in %s: continue with --resume",
                        self.step, st.name, self.ckpt_dir)
            raise KeyboardInterrupt
        finished = self.step >= st.steps
        if self.dist.main and last_val != self.step:
            self.validate()
        exports: tuple[Path, ...] = ()
        if self.dist.main:
            exports = export_generator(self.ema.module, self.stage_dir / f"{self.config.name}_{st.name}")
            if finished:
                (self.stage_dir / DONE).write_text(json.dumps(
                    {"stage": st.name, "steps": self.step, "ended_at": utc_now(),
                     "exports": [str(p) for p in exports], "validation": self.last_validation}, indent=2) + "\n",
                    encoding="utf-8")
        barrier(self.dist)
        return StageResult(name=st.name, steps=self.step, finished=finished, seconds=seconds,
                           steps_this_session=self.step - start_step, started_at=started_at, ended_at=utc_now(),
                           validation=self.last_validation, exports=exports, data_wait_s=wait_total,
                           gpu_util=gpu.overall() if self.device.type == "cuda" else None)

    def close(self) -> None:
        if self._pairs is not None:
            self._pairs.close()
            self._pairs = None

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelError(f"discriminator weights not found: {path}")
    return read_state_dict(path)
