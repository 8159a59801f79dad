// GraphiQL, from npm and served by the API itself: no request leaves this origin. The
// login cookie authenticates both HTTP and the subscription socket.
import "graphiql/setup-workers/vite";
import "graphiql/style.css";
import "./page.css";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import { buildSchema } from "graphql";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { EXAMPLES } from "./examples";
// The committed schema (tests/test_schema_file.py keeps it current), built in: the docs
// and completion need no introspection query, which is deeper than the API's
// AITASKS_QUERY_MAX_DEPTH allows and is off in production anyway.
import schemaSource from "../../../schema.graphql?raw";

const schema = buildSchema(schemaSource);

function subscriptionUrl(): string {
  const url = new URL("/graphql", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

const fetcher = createGraphiQLFetcher({
  url: "/graphql",
  subscriptionUrl: subscriptionUrl(),
  // Required with the login cookie: no form on another site can send it.
  headers: { "GraphQL-Require-Preflight": "1" },
});

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <GraphiQL fetcher={fetcher} schema={schema} defaultTabs={EXAMPLES} />
  </StrictMode>,
);
