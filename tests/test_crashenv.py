"""crashext.crashenv: how crash versions are ordered when picking a crash."""

from crashext.crashenv import version_key


def test_a_build_after_a_release_sorts_between_it_and_the_next():
    """scripts/build-pykdump names crash master after the 9.0.2 tag
    "9.0.2+abcb45e" (crash itself says "9.0.2++"): newer than 9.0.2 and
    8.0.x, older than a 9.0.3 or 10.0.0 that would come after it."""
    names = ["10.0.0", "9.0.2+abcb45e", "8.0.6", "9.0.3", "8.0.2", "9.0.2", "9.0.2++"]
    assert sorted(names, key=version_key) == [
        "8.0.2", "8.0.6", "9.0.2", "9.0.2+abcb45e", "9.0.2++", "9.0.3", "10.0.0"]
    assert version_key("9.0.2+abcb45e") > version_key("9.0.2") > version_key("8.0.6")
