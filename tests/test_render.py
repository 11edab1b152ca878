"""render.write_json writes exactly what json.dump(indent=2, sort_keys=True) writes.

The standard library is the reference: whatever it produces for a value,
write_json must produce byte for byte (it only does it faster and streams).
"""

import io
import json

from hypothesis import given, settings, strategies as st

from crashext import render

_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
_keys = st.text(max_size=8)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5)
                       | st.tuples(inner, inner)
                       | st.dictionaries(_keys, inner, max_size=5), max_leaves=40)


def _reference(data) -> str:
    buf = io.StringIO()
    json.dump(data, buf, indent=2, sort_keys=True, default=render.json_default)
    return buf.getvalue() + "\n"


def _ours(data) -> str:
    buf = io.StringIO()
    render.write_json(buf, data)
    return buf.getvalue()


@settings(max_examples=300, deadline=None)
@given(_values)
def test_same_text_as_json_dump(data):
    assert _ours(data) == _reference(data)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.integers() | st.floats(allow_nan=False), _scalars, max_size=6)
       | st.dictionaries(st.booleans() | st.none(), _scalars, max_size=2))
def test_non_string_keys_as_json_dump(data):
    # keys that cannot be sorted together fail the same way in both
    try:
        want = _reference(data)
    except TypeError:
        try:
            _ours(data)
        except TypeError:
            return
        raise AssertionError("json.dump refused this, write_json did not")
    assert _ours(data) == want


class _Row:
    def __init__(self, n):
        self.n = n

    def to_json(self):
        return {"n": self.n, "name": f"row{self.n}", "flags": ["A", "B"][: self.n % 3]}


def test_objects_through_the_default_hook_and_long_lists_stream():
    # more pieces than one flush holds: the text is still one document
    data = {"rows": [_Row(i) for i in range(3000)], "summary": {"total": 3000}}
    assert _ours(data) == _reference(data)
    assert json.loads(_ours(data))["summary"]["total"] == 3000


@settings(max_examples=100, deadline=None)
@given(st.lists(_values, max_size=6), _values)
def test_rows_made_while_written_give_the_list_text(items, other):
    # a render.Rows array writes as the list of what it yields, empty or not,
    # and is made anew each time it is iterated (written once, asked once
    # whether it is empty)
    made = []

    def make():
        made.append(1)
        return iter(items)
    got = _ours({"rows": render.Rows(make), "other": other})
    assert got == _reference({"rows": items, "other": other})
    assert len(made) == 2 if items else len(made) == 1
