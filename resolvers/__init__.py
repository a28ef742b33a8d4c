"""GraphQL types and resolvers: one package per domain, thin resolvers that ask loaders."""
