import { memo } from "react";
import { useQuery, useApolloClient } from "@apollo/client/react";
import type { ApolloCache, Reference } from "@apollo/client";
import { Link, useSearchParams } from "react-router";
import { POLL_INTERVAL_MS, useConnectionState } from "../connection";
import type { TaskRowFragment, TaskStatus } from "../gql/graphql";
import { TASKS, TASK_ROW, TASK_UPDATES } from "../operations";
import { useFrameBatch } from "../frameBatch";
import { useResumingSubscription } from "../resuming";
import { age, useNow } from "../time";
import { StatusBadge } from "./StatusBadge";
import { TaskProgress } from "./TaskProgress";

// Tasks per page; "Load more" fetches the next page after the last cursor.
export const PAGE_SIZE = 20;
const STATUSES: TaskStatus[] = ["PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"];

/** The status filter a cached `tasks` list was stored under (null: all). */
function listStatus(storeFieldName: string): string | null {
  const brace = storeFieldName.indexOf("{");
  if (brace < 0) return null;
  try {
    return (JSON.parse(storeFieldName.slice(brace)) as { status?: string | null }).status ?? null;
  } catch {
    return null;
  }
}

/** Write one task's change into the cache: rows showing it move by themselves; a task
 * no list holds yet goes to the top of the lists it belongs to. */
export function applyTaskUpdate(cache: ApolloCache, task: TaskRowFragment): void {
  const id = cache.identify({ __typename: "Task", id: task.id });
  const known = cache.readFragment({ fragment: TASK_ROW, id });
  if (known && known.sequence > task.sequence) return;
  cache.writeFragment({ fragment: TASK_ROW, id, data: { ...task, __typename: "Task" } });
  cache.modify({
    fields: {
      tasks(existing, { storeFieldName, toReference, readField }) {
        const list = existing as { edges?: { node: Reference }[] } | undefined;
        const status = listStatus(storeFieldName);
        if (!list?.edges || (status !== null && status !== task.status)) return existing;
        if (list.edges.some((edge) => readField("id", edge.node) === task.id)) return existing;
        const newest = list.edges[0] && (readField("createdAt", list.edges[0].node) as string);
        if (newest && newest > task.createdAt) return existing;
        const node = toReference({ __typename: "Task", id: task.id });
        return { ...list, edges: [{ __typename: "TaskEdge", cursor: "", node }, ...list.edges] };
      },
    },
  });
}

// A row renders again only when its task or the clock changed: Apollo hands back the same
// object for a task that did not change.
const TaskRow = memo(function TaskRow({ task, now }: { task: TaskRowFragment; now: number }) {
  return (
    <tr data-task-id={task.id}>
      <td>
        <StatusBadge status={task.status} />
      </td>
      <td>
        <Link to={`/tasks/${task.id}`}>{task.prompt || task.kind}</Link>
      </td>
      <td>{task.kind.replace("_", " ").toLowerCase()}</td>
      <td>{task.model}</td>
      <td>
        <TaskProgress progress={task.progress} />
      </td>
      <td title={task.createdAt}>{age(task.createdAt, now)}</td>
    </tr>
  );
});

export function TaskList() {
  const [params, setParams] = useSearchParams();
  const status = (params.get("status") as TaskStatus | null) ?? null;
  const polling = useConnectionState() === "polling";
  const client = useApolloClient();
  const now = useNow();
  const { data, error, loading, fetchMore } = useQuery(TASKS, {
    variables: { first: PAGE_SIZE, status },
    pollInterval: polling ? POLL_INTERVAL_MS : 0,
  });
  // Every task's latest change of a frame, written in one cache batch: one broadcast and
  // one render per frame, not one per change.
  const addUpdate = useFrameBatch<TaskRowFragment>(
    (tasks) =>
      client.cache.batch({
        update: (cache) => {
          for (const task of tasks) applyTaskUpdate(cache, task);
        },
      }),
    (task) => task.id,
    (task, than) => task.sequence > than.sequence,
  );
  useResumingSubscription(TASK_UPDATES, {
    key: "tasks",
    variables: () => ({}),
    onData: (update) => addUpdate(update.taskUpdates.task),
    resumeOnComplete: true,
  });

  const rows = (data?.tasks.edges ?? [])
    .map((edge) => edge.node)
    .filter((task) => status === null || task.status === status);
  const pageInfo = data?.tasks.pageInfo;
  return (
    <section>
      <div className="toolbar">
        <h1>Tasks</h1>
        <label>
          Status{" "}
          <select
            aria-label="Status filter"
            value={status ?? ""}
            onChange={(event) => setParams(event.target.value ? { status: event.target.value } : {})}
          >
            <option value="">all</option>
            {STATUSES.map((value) => (
              <option key={value} value={value}>
                {value.toLowerCase()}
              </option>
            ))}
          </select>
        </label>
        <Link className="button" to="/new">
          New task
        </Link>
      </div>
      {error && <ErrorNotice error={error} />}
      {loading && !data && <p>Loading…</p>}
      {data && rows.length === 0 && <p>No tasks yet.</p>}
      {rows.length > 0 && (
        <table className="tasks">
          <thead>
            <tr>
              <th>Status</th>
              <th>Task</th>
              <th>Kind</th>
              <th>Model</th>
              <th>Progress</th>
              <th>Age</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((task) => (
              <TaskRow key={task.id} task={task} now={now} />
            ))}
          </tbody>
        </table>
      )}
      {pageInfo?.hasNextPage && (
        <button type="button" onClick={() => fetchMore({ variables: { after: pageInfo.endCursor } })}>
          Load more
        </button>
      )}
    </section>
  );
}

/** An error from the API; an unauthenticated one links to the login page. */
export function ErrorNotice({ error }: { error: Error }) {
  const unauthenticated = /API key is needed|401/.test(error.message);
  return (
    <p className="error" role="alert">
      {unauthenticated ? (
        <>
          You are not logged in. <a href={`/login?next=${encodeURIComponent(location.pathname)}`}>Log in</a>
        </>
      ) : (
        error.message
      )}
    </p>
  );
}
