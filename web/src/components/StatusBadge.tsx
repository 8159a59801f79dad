import type { TaskStatus } from "../gql/graphql";

export function StatusBadge({ status }: { status: TaskStatus }) {
  return <span className={`status status-${status.toLowerCase()}`}>{status}</span>;
}
