"""The host allocator switch (``PAIRGAN_MALLOC_TUNING``), each setting in a fresh interpreter: the tuning
is decided once per process and changes glibc's malloc for the whole process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("setting, expected", [("1", "True"), ("0", "False")])
def test_tune_host_allocator_switch(setting: str, expected: str):
    code = "from pairgan.runtime import tune_host_allocator as t; a = t(); b = t(); assert a == b; print(a)"
    env = os.environ | {"PAIRGAN_MALLOC_TUNING": setting}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    want = expected if sys.platform.startswith("linux") else "False"
    assert out.stdout.strip() == want
