// Composes subgraphs into a supergraph with @theguild/federation-composition, the library
// Hive Gateway composes with. Usage: node compose.mjs SERVICES.json SUPERGRAPH.graphql, where
// SERVICES.json is [{"name", "url", "sdl"}]. Exits 1 and prints each error if they do not compose.
import { readFileSync, writeFileSync } from "node:fs";
import { parse } from "graphql";
import { composeServices, compositionHasErrors } from "@theguild/federation-composition";

const [servicesPath, outputPath] = process.argv.slice(2);
const services = JSON.parse(readFileSync(servicesPath, "utf8")).map((service) => ({
  name: service.name,
  url: service.url,
  typeDefs: parse(service.sdl),
}));
const result = composeServices(services);
if (compositionHasErrors(result)) {
  for (const error of result.errors) console.error(error.message);
  process.exit(1);
}
writeFileSync(outputPath, result.supergraphSdl);
