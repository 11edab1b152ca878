"""Hypothesis fuzzing of every text parser.

Targets (tests/faults/fuzz.py): kernel-log normalising and record
extraction (crashext.sources.logs / kmsg), allocfail's analysis on both its
paths, the /proc parsers, the knowledge-base loader, and crash session
transcripts.  Each gets arbitrary bytes and mutations of real inputs (the
RHEL7 idr-bug host's log and crash session, tests/data/logs, fixture /proc captures,
the shipped TOML files).  The only accepted failure is a CrashextError
with a one-line message.  Example counts are modest for CI; the long run is
benchmarks/fuzz_long.py.
"""

import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sharedcorpus import corpus_files
from tests.faults.fuzz import TARGETS, mutate, run_target, seeds

SEEDS = seeds()
CI = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("target", sorted(TARGETS))
@CI
@given(data=st.binary(max_size=4096))
def test_arbitrary_bytes(target, data):
    run_target(target, data)


@pytest.mark.parametrize("target", sorted(TARGETS))
@CI
@given(seed=st.integers(0, 2**32 - 1), which=st.integers(0, 1000))
def test_mutated_real_input(target, seed, which):
    pool = SEEDS[target]
    run_target(target, mutate(random.Random(seed), pool[which % len(pool)]))


@pytest.mark.parametrize("target", sorted(TARGETS))
@CI
@given(lines=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=120),
                      max_size=40))
def test_text_lines(target, lines):
    run_target(target, "\n".join(lines).encode("utf-8"))


def test_seeds_are_real():
    """The mutators start from real inputs, not empty strings; the crash
    session seeds come from the shared corpus, which must be there."""
    corpus_files()
    assert len(SEEDS["logs"]) >= 2 and all(len(s) > 100 for s in SEEDS["logs"][:2])
    assert len(SEEDS["kb"]) >= 1 and b"[[entry]]" in SEEDS["kb"][0]
    assert any(b"crash>" in s for s in SEEDS["crash_session"])


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seed_inputs_parse(target):
    """Unmutated real inputs are accepted (no error at all)."""
    from tests.faults.fuzz import TARGETS as T
    for s in SEEDS[target]:
        if target == "procfs" or not s:
            run_target(target, s)
        else:
            T[target](s)
