// One Apollo Client: subscriptions over the WebSocket, the rest over HTTP (multipart when
// a variable holds a File). The login cookie authenticates both.
import { ApolloClient, ApolloLink, InMemoryCache } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { relayStylePagination } from "@apollo/client/utilities";
import type { FieldReadFunction, StoreObject } from "@apollo/client/cache";
import UploadHttpLink from "apollo-upload-client/UploadHttpLink.mjs";
import { OperationTypeNode } from "graphql";
import { connection } from "./connection";

// The server serves a multipart request, and any request authenticated by the cookie,
// only with this header: no form on another site can send it.
const PREFLIGHT_HEADERS = { "GraphQL-Require-Preflight": "1" };

const http = new UploadHttpLink({
  uri: "/graphql",
  credentials: "same-origin",
  headers: PREFLIGHT_HEADERS,
});
const socket = new GraphQLWsLink(connection.client);

const link = ApolloLink.split(
  ({ operationType }) => operationType === OperationTypeNode.SUBSCRIPTION,
  socket,
  http,
);

// Each status filter is a list of its own; pages of one list merge.
const pagination = relayStylePagination(["status"]);

/** The stored list as it is. relayStylePagination's own read builds a new connection, edge
 * array and pageInfo on every read, and Apollo's result cache keys results by object: each
 * cache broadcast left new entries behind (kept up to its 50,000-entry bound), about 5 KB
 * of heap per update on the list. Its read is still used when a row's task is missing. */
const readTasks: FieldReadFunction = (existing, options) => {
  const list = existing as { edges?: StoreObject[] } | undefined;
  const readable = list?.edges?.every((edge) => options.canRead(options.readField("node", edge)));
  if (list === undefined || readable) return existing;
  return (pagination.read as FieldReadFunction)(existing, options);
};

export const client = new ApolloClient({
  link,
  cache: new InMemoryCache({
    typePolicies: { Query: { fields: { tasks: { ...pagination, read: readTasks } } } },
  }),
});
