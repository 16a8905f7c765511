"""CP-SAT on an encoder-decoder's unit graph at 6 chips, forced past the lattice, in its own
process: a crash inside the solver (an abort) would fail this test instead of the suite."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent("""
    import json, torch, chipcut
    from transformers import T5Config, T5Model
    from chipcut.compiler.solver import engine

    torch.manual_seed(0)
    t5 = T5Model(T5Config(d_model=64, d_ff=128, num_layers=3, num_heads=4, vocab_size=100,
                          use_cache=False)).eval()

    class EncoderDecoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.t5 = t5

        def forward(self, a, b):
            return self.t5(input_ids=a, decoder_input_ids=b).last_hidden_state

    ids = torch.zeros(1, 8, dtype=torch.long)
    engine.MAX_IDEALS = 50  # past the lattice: CP-SAT searches
    plans = [chipcut.compile(EncoderDecoder().eval(), (ids, ids), chips=6, time_limit_s=4,
                             passes="fold-bn,fuse") for _ in range(2)]
    a, b = plans
    print(json.dumps([a.solver.method, a.solver.status, a.solver.objective == b.solver.objective,
                      [s.nodes for s in a.stages] == [s.nodes for s in b.stages]]))
""")


def test_cp_sat_runs_to_its_limit_on_an_encoder_decoder() -> None:
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    method, status, same_value, same_plan = json.loads(out.stdout.splitlines()[-1])
    assert "CP-SAT" in method
    assert status in ("OPTIMAL", "FEASIBLE")
    assert same_value and same_plan  # same inputs, same plan
