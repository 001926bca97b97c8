"""Storage: the asyncpg pool, numbered SQL migrations, one repository per aggregate,
and the embedded PostgreSQL / Valkey bootstrap."""
