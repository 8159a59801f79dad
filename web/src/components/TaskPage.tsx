import { useState } from "react";
import { useApolloClient, useMutation, useQuery } from "@apollo/client/react";
import type { ApolloCache } from "@apollo/client";
import { Link, useParams } from "react-router";
import { POLL_INTERVAL_MS, useConnectionState } from "../connection";
import { graphql } from "../gql";
import type { TaskStatus, TaskStatusSubscription } from "../gql/graphql";
import { CANCEL_TASK, RETRY_TASK, TASK, TASK_DETAIL, TASK_STATUS } from "../operations";
import { useResumingSubscription } from "../resuming";
import { when } from "../time";
import { Artifacts } from "./Artifacts";
import { OutputTree, type Json } from "./OutputTree";
import { StatusBadge } from "./StatusBadge";
import { ErrorNotice } from "./TaskList";
import { TaskProgress } from "./TaskProgress";

const FINISHED: ReadonlySet<TaskStatus> = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

// What the page has shown: the text so far and the change it is up to.
const TASK_TEXT = graphql(`
  fragment TaskText on Task {
    id
    sequence
    result
  }
`);

/** The sequence of the last change this page showed, from the cache. */
function shownSequence(cache: ApolloCache, id: string): number | null {
  const shown = cache.readFragment({ fragment: TASK_TEXT, id: cache.identify({ __typename: "Task", id }) });
  return shown ? shown.sequence : null;
}

/** Add one change to the cached task: its fields, and its delta to the text. A change
 * already shown (a replay) is skipped, so the text is never doubled. */
function applyChange(cache: ApolloCache, update: TaskStatusSubscription["taskStatus"]): void {
  const id = cache.identify({ __typename: "Task", id: update.task.id });
  const shown = cache.readFragment({ fragment: TASK_TEXT, id });
  if (shown && update.sequence <= shown.sequence) return;
  cache.writeFragment({ fragment: TASK_DETAIL, fragmentName: "TaskDetail", id, data: update.task });
  cache.writeFragment({
    fragment: TASK_TEXT,
    id,
    data: {
      __typename: "Task",
      id: update.task.id,
      sequence: update.sequence,
      result: (shown?.result ?? "") + (update.delta ?? ""),
    },
  });
}

function Controls({ id, status }: { id: string; status: TaskStatus }) {
  const [cancel, cancelling] = useMutation(CANCEL_TASK, { variables: { id } });
  const [retry, retrying] = useMutation(RETRY_TASK, { variables: { id } });
  const [message, setMessage] = useState<string | null>(null);
  const run = async (action: typeof cancel | typeof retry) => {
    setMessage(null);
    const { data } = await action();
    const outcome = data && ("cancelTask" in data ? data.cancelTask : data.retryTask);
    if (outcome && outcome.__typename !== "Task") setMessage(outcome.message);
  };
  const canCancel = status === "PENDING" || status === "PROCESSING";
  const canRetry = status === "FAILED" || status === "CANCELLED";
  return (
    <div className="controls">
      <button type="button" disabled={!canCancel || cancelling.loading} onClick={() => run(cancel)}>
        Cancel
      </button>
      <span className="muted">{canCancel && "→ CANCELLED"}</span>
      <button type="button" disabled={!canRetry || retrying.loading} onClick={() => run(retry)}>
        Retry
      </button>
      <span className="muted">{canRetry && "→ PENDING, then runs again"}</span>
      {message && (
        <p className="error" role="alert">
          {message}
        </p>
      )}
    </div>
  );
}

export function TaskPage() {
  const { id = "" } = useParams();
  const client = useApolloClient();
  const polling = useConnectionState() === "polling";
  const { data, error, loading } = useQuery(TASK, { variables: { id }, fetchPolicy: "cache-and-network" });
  const task = data?.task;
  const finished = task ? FINISHED.has(task.status) : false;
  useQuery(TASK, {
    variables: { id },
    fetchPolicy: "network-only",
    pollInterval: POLL_INTERVAL_MS,
    skip: !polling || !task || finished,
  });
  useResumingSubscription(TASK_STATUS, {
    key: id,
    skip: !task || finished,
    variables: () => ({ id, after: shownSequence(client.cache, id) }),
    onData: (update) => applyChange(client.cache, update.taskStatus),
  });

  if (error && !task) return <ErrorNotice error={error} />;
  if (loading && !task) return <p>Loading…</p>;
  if (!task) return <p>No task {id} (or not yours).</p>;
  return (
    <article className="task" data-task-id={task.id}>
      <p>
        <Link to="/">← Tasks</Link>
      </p>
      <h1>
        <StatusBadge status={task.status} /> {task.kind.replace("_", " ").toLowerCase()}{" "}
        <span className="muted">{task.model}</span>
      </h1>
      <TaskProgress progress={task.progress} />
      <p className="stage">
        Stage: <span data-testid="stage">{task.stage ?? "—"}</span> · sequence {task.sequence}
      </p>
      <Controls id={task.id} status={task.status} />
      {task.prompt && <blockquote className="prompt">{task.prompt}</blockquote>}
      {task.kind === "TEXT_GENERATION" && (
        <pre className="result" data-testid="task-text" aria-live="polite">
          {task.result ?? ""}
        </pre>
      )}
      {task.error && (
        <p className="error" role="alert">
          {task.error}
        </p>
      )}
      <dl className="times">
        <dt>Created</dt>
        <dd>{when(task.createdAt)}</dd>
        <dt>Started</dt>
        <dd>{when(task.startedAt)}</dd>
        <dt>Finished</dt>
        <dd>{when(task.finishedAt)}</dd>
        <dt>Attempts</dt>
        <dd data-testid="attempts">{task.attempts}</dd>
        <dt>Priority</dt>
        <dd>{task.priority}</dd>
        <dt>Timeout</dt>
        <dd>{task.timeoutSeconds} s</dd>
      </dl>
      {task.errors.length > 0 && (
        <section>
          <h2>Errors</h2>
          <ol className="errors">
            {task.errors.map((failure) => (
              <li key={failure.attempt}>
                Attempt {failure.attempt} at {when(failure.at)}: {failure.message}
                {failure.transient && <span className="muted"> (transient)</span>}
              </li>
            ))}
          </ol>
        </section>
      )}
      <Artifacts artifacts={task.artifacts} />
      {task.output != null && (
        <section>
          <h2>Output</h2>
          <OutputTree value={task.output as Json} />
        </section>
      )}
    </article>
  );
}
