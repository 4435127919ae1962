#!/usr/bin/env python3
"""Validates a generated report: `dmarc FILE` against the RFC 7489 XSD (xmlschema),
`tls FILE` against the RFC 8460 JSON schema (jsonschema). Exit 0 when valid, else 1 with why."""
import json
import os
import sys

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schemas")
kind, path = sys.argv[1], sys.argv[2]
if kind == "dmarc":
    import xmlschema
    schema = xmlschema.XMLSchema(os.path.join(here, "dmarc_rfc7489.xsd"))
    errors = list(schema.iter_errors(path))
else:
    import jsonschema
    with open(os.path.join(here, "tlsrpt_rfc8460.json")) as f:
        schema = json.load(f)
    with open(path) as f:
        doc = json.load(f)
    v = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = list(v.iter_errors(doc))
for e in errors:
    print(e, file=sys.stderr)
sys.exit(1 if errors else 0)
