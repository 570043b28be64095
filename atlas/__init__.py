"""atlas: a static site generator for a browsable atlas of LAION."""

__version__ = "0.1.0"
