// Hive Gateway's configuration for Chimera's supergraph (docker compose's federation profile,
// and tests/api/test_federation_gateway.py): the caller's Authorization header is passed on to
// every subgraph, since Chimera binds the tenant from it. The supergraph file is given on the
// command line (`hive-gateway supergraph supergraph.graphql --config-path gateway.config.mjs`).
export const gatewayConfig = {
  propagateHeaders: {
    fromClientToSubgraphs({ request }) {
      const authorization = request.headers.get("authorization");
      return authorization ? { authorization } : {};
    },
  },
};
