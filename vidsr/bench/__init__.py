"""`vidsr bench`: where the time goes, measured on the machine at hand in one run."""
from vidsr.bench.run import BenchConfig, run_bench

__all__ = ["BenchConfig", "run_bench"]
