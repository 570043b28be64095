"""Commands that are more than a build: ``atlas generate`` (Stable Diffusion images, once, on a GPU)."""
