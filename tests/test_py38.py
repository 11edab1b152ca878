"""crashext must import in crash's embedded Python, which may be 3.8.

PyKdump embeds whatever Python it was built with (3.8 to 3.11 in practice);
the package and the epython scripts must not use anything newer.  vermin
reads the source and names the minimum version each construct needs.
"""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_package_and_epython_scripts_run_on_python_3_8():
    vermin = shutil.which("vermin")
    if vermin is None:
        pytest.skip("vermin is not installed (pip install -e '.[test]')")
    proc = subprocess.run([vermin, "--no-tips", "--violations", "-t=3.8-",
                           os.path.join(ROOT, "crashext"), os.path.join(ROOT, "epython")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
