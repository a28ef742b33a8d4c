// Hive Gateway's configuration for the federation test: the composed supergraph, and the
// caller's Authorization header passed on to every subgraph (Chimera binds the tenant from it).
export const gatewayConfig = {
  supergraph: process.env.SUPERGRAPH_PATH,
  propagateHeaders: {
    fromClientToSubgraphs({ request }) {
      const authorization = request.headers.get("authorization");
      return authorization ? { authorization } : {};
    },
  },
};
