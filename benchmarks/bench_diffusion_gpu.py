"""Stable Diffusion 1.5-sized denoising throughput on one CUDA GPU, with random weights.

What `atlas generate` spends its GPU time on: 50 UNet steps per 512x512 image with
classifier-free guidance (each step runs the UNet on a batch of 2: prompt and empty prompt),
a DDIM scheduler step, then one VAE decode. The UNet and VAE are built from the SD 1.5 configs
written out below (same shapes and FLOPs as the real model) with random weights, so nothing is
downloaded. The text encoder (one CLIP text forward per image, ~1 ms) is replaced by random
embeddings.

Published reference: about 1.1-1.4 s per 50-step 512x512 image in fp16 on one H100 with
diffusers (PyTorch 2 SDPA attention, no compilation).

Usage::

    python benchmarks/bench_diffusion_gpu.py                       # fp16 on CUDA, 50 steps
    python benchmarks/bench_diffusion_gpu.py --images 16 --batch 4 --compile
    python benchmarks/bench_diffusion_gpu.py --device cpu --steps 2 --size 64   # smoke run only

Prints a summary and writes JSON (default ``benchmarks/results/bench_diffusion_gpu.json``).
Without a CUDA device it prints "no CUDA device; skipped" and writes JSON saying so.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

#: The published seconds per 50-step 512x512 fp16 image on one H100 (range).
PUBLISHED_H100_S_PER_IMAGE = (1.1, 1.4)

#: runwayml/stable-diffusion-v1-5 unet/config.json, written out (no download).
SD15_UNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

#: runwayml/stable-diffusion-v1-5 vae/config.json, written out.
SD15_VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
VAE_SCALING = 0.18215

#: runwayml/stable-diffusion-v1-5 scheduler (PNDM there; DDIM with the same betas here).
SD15_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="denoising steps per image (default 50)")
    parser.add_argument("--images", type=int, default=8, help="timed images (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up images (default 2)")
    parser.add_argument("--batch", type=int, default=1, help="images per UNet call (default 1)")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    parser.add_argument("--guidance", type=float, default=7.5, help="> 1 doubles the UNet batch (default 7.5)")
    parser.add_argument("--no-vae", action="store_true", help="time the denoising loop only")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet (slow first call)")
    parser.add_argument("--channels-last", action="store_true", help="use channels_last memory format")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke run, not a benchmark")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_diffusion_gpu.json"))
    return parser.parse_args(argv)


def write(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


def main(argv=None) -> int:
    args = parse_args(argv)
    result = {
        "benchmark": "sd15_unet_denoise",
        "python": platform.python_version(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "published_h100_s_per_image": list(PUBLISHED_H100_S_PER_IMAGE),
    }
    try:
        import torch
    except ImportError:
        print("torch is not installed; skipped")
        write(args.out, {**result, "skipped": True, "reason": "torch is not installed"})
        return 0
    result["torch"] = torch.__version__
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device; skipped")
        write(args.out, {**result, "skipped": True, "reason": "no CUDA device"})
        return 0
    if args.size % 8:
        print("--size must be a multiple of 8", file=sys.stderr)
        return 2

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:  # a torchvision whose compiled ops do not load breaks `import diffusers`; atlas works around it
        from atlas.models._torch_compat import import_torchvision

        import_torchvision()
    except Exception:
        pass
    import diffusers
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    diffusers.utils.logging.set_verbosity_error()

    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        result["device"] = torch.cuda.get_device_name(device)
    else:
        result["device"] = f"cpu ({platform.processor() or platform.machine()}), smoke run: not comparable"
    result["diffusers"] = diffusers.__version__
    result["dtype"] = str(dtype).removeprefix("torch.")

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET).to(device=device, dtype=dtype).eval()
    vae = None if args.no_vae else AutoencoderKL(**SD15_VAE).to(device=device, dtype=dtype).eval()
    if args.channels_last:
        unet = unet.to(memory_format=torch.channels_last)
        if vae is not None:
            vae = vae.to(memory_format=torch.channels_last)
    result["unet_parameters_m"] = round(sum(p.numel() for p in unet.parameters()) / 1e6, 1)
    if args.compile:
        unet = torch.compile(unet)
    scheduler = DDIMScheduler(**SD15_BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1)

    cfg = args.guidance > 1.0
    rows = args.batch * (2 if cfg else 1)
    text = torch.randn(rows, 77, SD15_UNET["cross_attention_dim"], device=device, dtype=dtype)
    latent_side = args.size // 8
    generator = torch.Generator("cpu").manual_seed(0)

    def one_batch() -> None:
        scheduler.set_timesteps(args.steps, device=device)
        latents = torch.randn(args.batch, 4, latent_side, latent_side, generator=generator).to(device, dtype)
        latents = latents * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            model_input = torch.cat([latents] * 2) if cfg else latents
            model_input = scheduler.scale_model_input(model_input, t)
            noise = unet(model_input, t, encoder_hidden_states=text, return_dict=False)[0]
            if cfg:
                uncond, cond = noise.chunk(2)
                noise = uncond + args.guidance * (cond - uncond)
            latents = scheduler.step(noise, t, latents, return_dict=False)[0]
        if vae is not None:
            vae.decode(latents / VAE_SCALING, return_dict=False)[0].float().clamp(-1, 1).cpu()
        elif device.type == "cuda":
            torch.cuda.synchronize()

    batches = max(1, -(-args.images // args.batch))
    with torch.inference_mode():
        for _ in range(max(0, -(-args.warmup // args.batch))):
            one_batch()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(batches):
            started = time.perf_counter()
            one_batch()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)

    per_image = [t / args.batch for t in times]
    mean = statistics.fmean(per_image)
    lo, hi = PUBLISHED_H100_S_PER_IMAGE
    scale = 50 / args.steps * (512 / args.size) ** 2  # rough: per-step cost grows with the latent area
    comparable = mean * scale
    if device.type != "cuda":
        verdict = "not compared: a CPU smoke run checks that the script works, not its speed"
    else:
        verdict = (
            "faster than" if comparable < lo else "slower than" if comparable > hi else "within"
        ) + f" the published {lo}-{hi} s per 50-step 512x512 image on one H100"
        if (args.steps, args.size) != (50, 512):
            verdict += " (scaled estimate: other steps/size)"
    result.update(
        {
            "skipped": False,
            "images": batches * args.batch,
            "s_per_image_mean": round(mean, 4),
            "s_per_image_median": round(statistics.median(per_image), 4),
            "s_per_image_min": round(min(per_image), 4),
            "images_per_s": round(1 / mean, 3),
            "steps_per_s": round(args.steps / mean, 1),
            "s_per_50_step_512px_image_estimate": round(comparable, 4),
            "comparison": verdict,
        }
    )
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(
        f"{result['device']}: {result['images_per_s']} images/s, {mean:.3f} s per {args.steps}-step "
        f"{args.size}x{args.size} image ({result['steps_per_s']} steps/s, batch {args.batch}, "
        f"{result['dtype']}{', VAE decode included' if vae is not None else ', no VAE'}); {result['comparison']}"
    )
    write(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
