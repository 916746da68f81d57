"""The template corpus: emitters' own message formats, labelled with the taxonomy, composed into training bundles.

`catalog/` holds the data (templates with provenance, the Xid catalogue), `catalog.py` loads and validates it,
`fills.py` fills placeholders with realistic values, `compose.py` builds labelled evidence bundles the way real
incidents look. Real incident logs are never an input.
"""
