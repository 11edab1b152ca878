"""memcgpins inside a real crash session (PyKdump backend), in every crash
built for the pack: its JSON, written through crash's own redirection, must
equal the standalone drgn JSON for the same memcg-pins dump, and the
table's verdict line must be the same.  No progress line may reach the
redirected files (inside crash the progress stream is the command's
output)."""

import json

import pytest

import crashbuilds
from jsoncmp import strip_place
from test_crash_pack import crash_run, standalone_json

pytestmark = [pytest.mark.pykdump, pytest.mark.vmcore]


@pytest.mark.parametrize("version,suite", crashbuilds.PAIRS)
def test_memcgpins_inside_crash_equals_standalone(vmcore, version, suite, tmp_path):
    build = crashbuilds.need(version)
    fx = vmcore(suite, "memcg-pins")
    out = tmp_path / "pins.json"
    table = tmp_path / "pins.txt"
    rc, transcript = crash_run(fx, f"memcgpins --json > {out}", f"memcgpins > {table}",
                               build=build)
    assert "crashext: registered" in transcript and "memcgpins" in transcript, transcript[-2000:]
    assert "Traceback" not in transcript
    assert out.exists() and out.stat().st_size > 0, transcript[-2000:]
    inside = json.loads(out.read_text())
    want = standalone_json(fx, "memcgpins")
    assert strip_place(inside) == strip_place(want)
    first = table.read_text().splitlines()[0]
    assert first.split(":", 1)[1].strip() == want["summary"]["verdict"]
