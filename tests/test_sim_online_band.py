"""benchmarks/sim_online_band.py (the table in docs/learning.md) runs through the real sampler: on a small prompt
set, patience 1 empties the band within the run and signal_patience 3 keeps it fed longer."""

import subprocess
import sys

from tests.gpu_scripts import GPU_SCRIPTS

SCRIPT = GPU_SCRIPTS.parent / "sim_online_band.py"


def test_signal_patience_keeps_the_band_fed_longer_than_patience_one():
    out = subprocess.run([sys.executable, str(SCRIPT), "--prompts", "400", "--updates", "60", "--seeds", "1"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    rows = {line.split("|")[1].strip(): line.split("|")[4].strip() for line in out.splitlines()
            if line.startswith("| patience")}
    assert set(rows) == {"patience 1", "patience 2", "patience 1, signal_patience 2", "patience 1, signal_patience 3"}
    emptied = int(rows["patience 1"])
    assert emptied < 60 and (rows["patience 1, signal_patience 3"] == ">60"
                             or int(rows["patience 1, signal_patience 3"]) > emptied), out
