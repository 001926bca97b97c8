"""Pure business rules: no I/O, no GraphQL, no SQL."""
