// One Apollo Client: subscriptions over the WebSocket, the rest over HTTP (multipart when
// a variable holds a File). The login cookie authenticates both.
import { ApolloClient, ApolloLink, InMemoryCache } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { relayStylePagination } from "@apollo/client/utilities";
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

export const client = new ApolloClient({
  link,
  cache: new InMemoryCache({
    // Each status filter is a list of its own; pages of one list merge.
    typePolicies: { Query: { fields: { tasks: relayStylePagination(["status"]) } } },
  }),
});
