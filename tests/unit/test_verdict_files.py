"""A verdict file's text reads back as the document written, one result per line
(conformance.run.verdict_files.dumps)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.run.verdict_files import dumps

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(head=st.dictionaries(st.text().filter(lambda k: k != "results"), JSON, max_size=4),
       results=st.lists(st.dictionaries(st.text(), JSON, max_size=4), max_size=6))
def test_the_text_reads_back_as_the_document(head, results):
    doc = {**head, "results": results}
    text = dumps(doc)
    assert json.loads(text) == doc
    assert text.endswith("}\n")
    lines = [line.removesuffix(",") for line in text.splitlines()]
    for result in results:  # each result whole on a line of its own
        assert "    " + json.dumps(result) in lines


def test_a_document_without_a_results_list_is_written_as_it_is():
    for doc in ({}, {"profile": "p"}, {"results": "none"}):
        assert json.loads(dumps(doc)) == doc
