"""The command as a process: `python -m pairgan.cli --help`."""

import subprocess
import sys


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "pairgan.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "translate" in r.stdout and "train" in r.stdout
