"""GraphQL types, inputs, enums, scalars and the Schema object (``schema.root``).

No SQL and no business rules here: fields that need data call into ``resolvers``.
"""
