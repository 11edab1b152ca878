"""Running-guest harness for the live tests (tests/test_live*.py); docs/live.md."""
