"""Memory: LLaMA-7B on the meta device compiles for 8 chips in a few seconds and under 2 GB.

Runs the compile in a fresh process so that its peak resident memory is its own, and
writes the figures to RESULTS.md.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from benchmarks.results import machine, table, write_section

PROGRAM = textwrap.dedent("""
    import resource, time, chipcut
    from chipcut.examples import llama_7b
    start = time.perf_counter()
    model, inputs = llama_7b()
    plan = chipcut.compile(model, inputs, chips=8, time_limit_s=3)
    print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
          plan.model.macs, len(plan.stages), plan.solver.status)
""")


def main() -> None:
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                         check=True, timeout=600)
    seconds, peak_bytes, macs, stages, status = out.stdout.split()[-5:]
    # 6.74e9 parameters x 128 tokens, minus the embedding, plus attention: ~0.85 TMAC.
    ok = int(peak_bytes) < 2 * 2**30 and 0.80e12 < int(macs) < 0.90e12 and int(stages) == 8
    rows = [["LLaMA-7B (meta, seq 128)", 8, f"{float(seconds):.1f}",
             f"{int(peak_bytes) / 2**30:.2f}", f"{int(macs) / 1e12:.3f}", status,
             "yes" if ok else "NO"]]
    body = (f"## Memory: a 7B model on the meta device (`benchmarks/memory_bench.py`)\n\n"
            f"Whole compile (capture, passes, solve) in a fresh process; {machine()}. Target: "
            "peak RSS < 2 GiB, MACs 0.80-0.90 T.\n\n"
            + table(["model", "chips", "compile s", "peak RSS GiB", "TMAC", "solver", "meets target"],
                    rows))
    print(body)
    write_section("memory", body)


if __name__ == "__main__":
    main()
