"""One module per domain: authorisation, input checks, then a call into the core."""
