"""One vocabulary for test cases: every action, subject, qualifier and operator, defined once.

    actions.py    ACTIONS      step actions (http, sip_send, ...) and the functions that run them
    subjects.py   SUBJECTS     what an expectation looks at; QUALIFIERS refine it; META keys
    operators.py  OPERATORS    how it compares
    shorthand.py  normalise    what an item without an operator means (loader and matcher alike)
    schema_gen.py              the schema parts derived from the above (testcase.schema.json)

Each definition provides what `definition.Definition` describes: name, one-line doc, schema
fragment, implementation. This package imports no other harness code at import time (the
implementations load on first use), so the loader, the matcher and the engines all build on it.
"""
