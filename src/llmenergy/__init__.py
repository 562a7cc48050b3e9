"""llmenergy: phase-level energy of LLM inference on code benchmarks."""

__version__ = "0.1.0"
