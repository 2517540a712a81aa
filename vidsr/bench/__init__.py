"""`vidsr bench`: where the time goes, measured on the machine at hand in one run.

The public surface is what this module exports; scripts/ and the tests import from here only.
"""
from vidsr.bench.memory import Peak, measure_peak
from vidsr.bench.op_count import OpCounter
from vidsr.bench.reference import reference_loop
from vidsr.bench.run import BenchConfig, format_table, make_input, run_bench

__all__ = ["BenchConfig", "OpCounter", "Peak", "format_table", "make_input", "measure_peak", "reference_loop",
           "run_bench"]
