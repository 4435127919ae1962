# The generated reports are validated against the DMARC aggregate XSD and the RFC 8460 schema.
need_py jsonschema jsonschema
need_py xmlschema xmlschema
