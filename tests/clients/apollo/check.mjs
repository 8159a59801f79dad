// End-to-end check that Apollo Client, set up the way a frontend would set it up, works
// against a running aitasks API: the createTask union, a watched task(id) query kept up to
// date by taskStatus through the normalised cache, a watched tasks list fed by the
// taskUpdates subscription, the polling fallback, and keep-alive pings on the socket.
//
// Usage: node check.mjs HTTP_URL WS_URL
// Prints one JSON object on stdout: {ok, checks: {name: {ok, detail}}, observed, error}.
// Exits 0 when every check held, 1 when one did not, 2 on bad usage.

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { relayStylePagination } from "@apollo/client/utilities";
import { OperationTypeNode } from "graphql";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

// tests/clients/test_apollo.py gives this script 90 s; stop before that, with a message.
const OVERALL_TIMEOUT_MS = 60_000;
// A demo task finishes in a few seconds; one step taking this long is a failure.
const STEP_TIMEOUT_MS = 30_000;
// Short, so that at least one ping/pong round trip happens in a run of a few seconds.
// A browser app would ping every 10 to 30 s.
const KEEP_ALIVE_MS = 1_000;
// The polling fallback's interval: several polls while a demo task runs (1.5 s in the tests).
const POLL_INTERVAL_MS = 250;
// Small, so that the three tasks this check creates make more than one page.
const PAGE_SIZE = 2;
const FINISHED = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

// GraphQLWsLink looks at the global WebSocket when a socket fails, and Node 20 has none:
// without this, a failed socket throws a ReferenceError instead of reporting the failure.
globalThis.WebSocket ??= WebSocket;

const TASK_FIELDS = gql`
  fragment TaskFields on Task {
    id
    status
    progress
    stage
    result
    error
    sequence
    createdAt
  }
`;
const CREATE_TASK = gql`
  mutation CreateTask($input: CreateTaskInput!) {
    createTask(input: $input) {
      __typename
      ... on Task {
        id
        status
        model
        sequence
      }
      ... on ValidationError {
        field
        message
      }
    }
  }
`;
const TASK = gql`
  query Task($id: ID!) {
    task(id: $id) {
      ...TaskFields
    }
  }
  ${TASK_FIELDS}
`;
const TASK_STATUS = gql`
  subscription TaskStatus($id: ID!, $after: Int) {
    taskStatus(id: $id, after: $after) {
      sequence
      status
      progress
      stage
      delta
      task {
        ...TaskFields
      }
    }
  }
  ${TASK_FIELDS}
`;
const TASKS = gql`
  query Tasks($first: Int, $after: String) {
    tasks(first: $first, after: $after) {
      edges {
        cursor
        node {
          ...TaskFields
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
  ${TASK_FIELDS}
`;
const TASK_UPDATES = gql`
  subscription TaskUpdates {
    taskUpdates {
      sequence
      status
      task {
        ...TaskFields
      }
    }
  }
  ${TASK_FIELDS}
`;

const report = { ok: false, checks: {}, observed: {}, error: null };

function check(name, ok, detail) {
  report.checks[name] = { ok: Boolean(ok), detail };
}

function finish(error) {
  if (error) report.error = describe(error);
  const checks = Object.values(report.checks);
  report.ok = !report.error && checks.length > 0 && checks.every((c) => c.ok);
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(report.ok ? 0 : 1);
}

/** What an observable emitted, and a way to wait (with a timeout) for a condition on it. */
class Recording {
  constructor(observable) {
    this.values = [];
    this.completed = false;
    this.error = null;
    this.waiters = new Set();
    this.subscription = observable.subscribe({
      // Apollo reports a GraphQL error as a value with `error`, not through `error`.
      next: (value) =>
        value?.error ? this.fail(value.error) : this.update(() => this.values.push(value)),
      error: (error) => this.fail(error),
      complete: () => this.update(() => (this.completed = true)),
    });
  }

  update(change) {
    change();
    for (const waiter of this.waiters) waiter();
  }

  fail(error) {
    this.update(() => (this.error = error));
  }

  waitFor(what, condition) {
    return new Promise((resolve, reject) => {
      const timedOut = () => settle(new Error(`timed out waiting for ${what}`));
      const timer = setTimeout(timedOut, STEP_TIMEOUT_MS);
      const settle = (error) => {
        clearTimeout(timer);
        this.waiters.delete(test);
        if (error) reject(error);
        else resolve(this);
      };
      const test = () => {
        if (this.error) settle(new Error(`${what}: ${describe(this.error)}`));
        else if (condition(this)) settle();
      };
      this.waiters.add(test);
      test();
    });
  }

  stop() {
    this.subscription.unsubscribe();
  }
}

function describe(error) {
  const graphqlErrors = error?.errors?.map((e) => e.message).join("; ");
  // A close event from the socket has a code and a reason but no message.
  const closed = error?.code && `socket closed with ${error.code} ${error.reason ?? ""}`.trim();
  const message = graphqlErrors || error?.message || closed || String(error);
  return error?.cause?.message ? `${message}: ${error.cause.message}` : message;
}

/** The data of each complete result a watched query gave. */
function dataSeen(recording) {
  return recording.values.filter((r) => r.dataState === "complete").map((r) => r.data);
}

/** Statuses in the order seen, without repeats in a row. */
function distinct(statuses) {
  return statuses.filter((status, index) => status !== statuses[index - 1]);
}

/** The cache a frontend should use: tasks pages merge; `status` alone names a list. */
function newCache() {
  return new InMemoryCache({
    typePolicies: { Query: { fields: { tasks: relayStylePagination(["status"]) } } },
  });
}

function buildClient(httpUrl, wsUrl) {
  const httpOperations = {};
  const socket = { pongs: 0 };
  // Counts what goes over HTTP, to show the watched queries stay fresh without refetching.
  const countHttp = new ApolloLink((operation, forward) => {
    const name = operation.operationName;
    httpOperations[name] = (httpOperations[name] ?? 0) + 1;
    return forward(operation);
  });
  const wsClient = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    keepAlive: KEEP_ALIVE_MS,
    // One socket for the whole run, opened now: a feed subscribed to later is live as soon
    // as its message is sent, with no connect handshake racing the task it should see.
    lazy: false,
    // A dropped socket fails the check rather than hiding behind a reconnect.
    retryAttempts: 0,
    onNonLazyError: (error) => process.stderr.write(`websocket: ${describe(error)}\n`),
    on: { pong: (received) => received && (socket.pongs += 1) },
  });
  const client = new ApolloClient({
    link: ApolloLink.split(
      ({ operationType }) => operationType === OperationTypeNode.SUBSCRIPTION,
      new GraphQLWsLink(wsClient),
      ApolloLink.from([countHttp, new HttpLink({ uri: httpUrl })]),
    ),
    cache: newCache(),
  });
  return { client, wsClient, httpOperations, socket };
}

async function createTask(client, input) {
  const { data } = await client.mutate({ mutation: CREATE_TASK, variables: { input } });
  return data.createTask;
}

async function checkCreateTask(client) {
  const refused = await createTask(client, { prompt: "   ", model: "demo" });
  check(
    "create_task_returns_validation_error",
    refused.__typename === "ValidationError" && refused.field === "prompt",
    refused,
  );
  const task = await createTask(client, { prompt: "Apollo watches a task", model: "demo" });
  check(
    "create_task_returns_task",
    task.__typename === "Task" && task.id && task.status === "PENDING",
    task,
  );
  if (task.__typename !== "Task") {
    throw new Error(`createTask did not return a Task: ${JSON.stringify(task)}`);
  }
  return task;
}

/** The text a client shows: the first update's result, then each later update's delta. */
function rebuildText([first, ...later]) {
  return later.reduce((text, update) => text + (update.delta ?? ""), first?.task.result ?? "");
}

/** Watch task(id) while taskStatus follows the task; what each of them saw. */
async function followTask(client, task) {
  const watched = new Recording(client.watchQuery({ query: TASK, variables: { id: task.id } }));
  const statusesSeen = (recording) => dataSeen(recording).map((data) => data.task?.status);
  // Subscribe once the query has answered: the cache keeps the last write, so a late query
  // answer would otherwise overwrite a newer state from the subscription.
  await watched.waitFor("the task query", (r) => statusesSeen(r).length > 0);

  const subscription = client.subscribe({ query: TASK_STATUS, variables: { id: task.id } });
  const followed = new Recording(subscription);
  await followed.waitFor("taskStatus to complete", (r) => r.completed);
  await watched.waitFor("the watched task to finish", (r) =>
    FINISHED.has(statusesSeen(r).at(-1)),
  );
  watched.stop();
  return {
    updates: followed.values.map((value) => value.data.taskStatus),
    statuses: distinct(statusesSeen(watched)),
  };
}

async function checkWatchedTask(client, httpOperations, task) {
  const cacheId = client.cache.identify(task);
  check("task_normalised_by_id", cacheId === `Task:${task.id}`, cacheId);

  const { updates, statuses } = await followTask(client, task);
  const final = updates.at(-1)?.task;
  report.observed.taskStatus = updates.map(({ sequence, status, progress, stage, delta }) => ({
    sequence,
    status,
    progress,
    stage,
    delta,
  }));
  report.observed.watchedTaskStatuses = statuses;
  report.observed.finalTask = final;

  check("subscription_ends_completed", final?.status === "COMPLETED", final);
  const sequences = updates.map((u) => u.sequence);
  // Deltas only add up to the result when no change is skipped.
  check(
    "subscription_sequences_consecutive",
    sequences.every((s, i) => i === 0 || s === sequences[i - 1] + 1),
    sequences,
  );
  check(
    "watch_query_follows_subscription",
    ["PENDING", "PROCESSING"].includes(statuses[0]) && statuses.at(-1) === "COMPLETED",
    statuses,
  );
  check("watch_query_not_refetched", httpOperations.Task === 1, {
    httpRequests: httpOperations.Task,
  });
  const text = rebuildText(updates);
  check(
    "deltas_rebuild_result",
    updates.slice(1).some((u) => u.delta != null) && text === final?.result,
    { rebuilt: text, result: final?.result },
  );
}

/**
 * Puts a task created after the list's newest at its front. Normalisation alone updates the
 * tasks already listed; an older one (say, on a later page) has no place on this page.
 */
function addNewTask(_, { complete, previousData, subscriptionData }) {
  const task = subscriptionData.data.taskUpdates.task;
  const { edges } = previousData?.tasks ?? {};
  if (!complete || edges.some((edge) => edge.node.id === task.id)) return undefined;
  const newest = edges[0]?.node.createdAt;
  if (newest && Date.parse(task.createdAt) <= Date.parse(newest)) return undefined;
  // The cursor is opaque and the feed does not carry it; pages go by pageInfo.endCursor.
  const edge = { __typename: "TaskEdge", cursor: null, node: task };
  return { ...previousData, tasks: { ...previousData.tasks, edges: [edge, ...edges] } };
}

/** Watch the tasks list, fed by taskUpdates, while a new task runs; where it was seen. */
async function followList(client) {
  const list = client.watchQuery({ query: TASKS, variables: { first: 20 } });
  const watched = new Recording(list);
  const edgesSeen = (recording) => dataSeen(recording).map((data) => data.tasks.edges);
  await watched.waitFor("the tasks query", (r) => edgesSeen(r).length > 0);
  list.subscribeToMore({
    document: TASK_UPDATES,
    updateQuery: addNewTask,
    onError: (error) => watched.fail(error),
  });

  const task = await createTask(client, { prompt: "Apollo watches a list", model: "demo" });
  const positions = (recording) =>
    edgesSeen(recording)
      .map((edges) => ({ index: edges.findIndex((e) => e.node.id === task.id), edges }))
      .filter(({ index }) => index >= 0)
      .map(({ index, edges }) => ({ index, status: edges[index].node.status }));
  await watched.waitFor("the new task to finish in the list", (r) =>
    FINISHED.has(positions(r).at(-1)?.status),
  );
  watched.stop();
  return { positions: positions(watched), length: edgesSeen(watched).at(-1).length };
}

async function checkWatchedList(client, httpOperations) {
  const { positions, length } = await followList(client);
  const statuses = distinct(positions.map((p) => p.status));
  report.observed.listStatuses = statuses;
  report.observed.listLength = length;
  check("list_adds_new_task_at_front", positions[0]?.index === 0, positions[0]);
  check("list_task_ends_completed", statuses.at(-1) === "COMPLETED", statuses);
  check("list_not_refetched", httpOperations.Tasks === 1, { httpRequests: httpOperations.Tasks });
}

/** A client without a WebSocket, with a cache of its own. */
function httpClient(httpUrl) {
  return new ApolloClient({ link: new HttpLink({ uri: httpUrl }), cache: newCache() });
}

/** A client that cannot keep a WebSocket open polls task(id) until the task finishes. */
async function checkPolling(httpUrl) {
  const client = httpClient(httpUrl);
  const task = await createTask(client, { prompt: "Apollo polls a task", model: "demo" });
  const variables = { id: task.id };
  const query = client.watchQuery({ query: TASK, variables, pollInterval: POLL_INTERVAL_MS });
  const watched = new Recording(query);
  const statusesSeen = (recording) => dataSeen(recording).map((data) => data.task?.status);
  await watched.waitFor("polling to see the task finish", (r) =>
    FINISHED.has(statusesSeen(r).at(-1)),
  );
  query.stopPolling();
  watched.stop();
  client.stop();
  const statuses = distinct(statusesSeen(watched));
  report.observed.polledStatuses = statuses;
  check(
    "polling_follows_task",
    statuses.length > 1 && statuses.at(-1) === "COMPLETED",
    statuses,
  );
}

/** fetchMore with `after` adds the next page to the watched list (relayStylePagination). */
async function checkPagination(httpUrl) {
  const client = httpClient(httpUrl);
  const list = client.watchQuery({ query: TASKS, variables: { first: PAGE_SIZE } });
  const watched = new Recording(list);
  const lastSeen = (recording) => dataSeen(recording).at(-1)?.tasks;
  await watched.waitFor("the first page", (r) => lastSeen(r));
  const { hasNextPage, endCursor } = lastSeen(watched).pageInfo;
  await list.fetchMore({ variables: { after: endCursor } });
  await watched.waitFor("the next page in the list", (r) => lastSeen(r).edges.length > PAGE_SIZE);
  watched.stop();
  client.stop();
  const nodes = lastSeen(watched).edges.map((edge) => edge.node);
  const createdAt = nodes.map((node) => Date.parse(node.createdAt));
  check(
    "fetch_more_appends_next_page",
    hasNextPage &&
      new Set(nodes.map((node) => node.id)).size === nodes.length &&
      createdAt.every((time, i) => i === 0 || time <= createdAt[i - 1]),
    { listed: nodes.length, pageSize: PAGE_SIZE },
  );
}

async function main() {
  const [httpUrl, wsUrl] = process.argv.slice(2);
  if (!httpUrl || !wsUrl) {
    process.stderr.write("usage: node check.mjs HTTP_URL WS_URL\n");
    process.exit(2);
  }
  process.on("uncaughtException", finish);
  process.on("unhandledRejection", finish);
  const tooLong = `the check did not finish within ${OVERALL_TIMEOUT_MS / 1000} s`;
  setTimeout(() => finish(tooLong), OVERALL_TIMEOUT_MS);
  const { client, wsClient, httpOperations, socket } = buildClient(httpUrl, wsUrl);
  let failure = null;
  try {
    const task = await checkCreateTask(client);
    await checkWatchedTask(client, httpOperations, task);
    await checkWatchedList(client, httpOperations);
    await checkPolling(httpUrl);
    await checkPagination(httpUrl);
    check("keep_alive_answered", socket.pongs > 0, {
      pongs: socket.pongs,
      intervalMs: KEEP_ALIVE_MS,
    });
  } catch (error) {
    failure = error;
  }
  client.stop();
  wsClient.dispose();
  report.observed.httpOperations = httpOperations;
  finish(failure);
}

main();
