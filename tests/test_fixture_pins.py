"""Fixture kernels are pinned per suite (tests/vmcore/fixturelib.PINNED_KERNELS)."""
import fixturelib  # loaded by conftest


CANDS = [("6.1.200-1", "img-a", "dbg-a"), ("6.1.192-3", "img-b", "dbg-b"), ("6.1.176-1", "img-c", "dbg-c")]


def test_pinned_version_is_tried_first(monkeypatch):
    monkeypatch.setitem(fixturelib.PINNED_KERNELS, "bookworm", "6.1.192-3")
    assert [c[0] for c in fixturelib.pin_first("bookworm", CANDS)] == ["6.1.192-3", "6.1.200-1", "6.1.176-1"]


def test_gone_pin_falls_back_to_newest_with_one_line(monkeypatch, capsys):
    monkeypatch.setitem(fixturelib.PINNED_KERNELS, "bookworm", "6.1.100-1")
    assert fixturelib.pin_first("bookworm", CANDS) == CANDS
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    assert len(err) == 1 and "6.1.100-1 is gone" in err[0] and "using 6.1.200-1" in err[0]


def test_every_ci_suite_is_pinned():
    assert {s for s, _ in fixturelib.CI_SET} <= set(fixturelib.PINNED_KERNELS)
