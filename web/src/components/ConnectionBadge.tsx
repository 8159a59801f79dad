import { useConnectionState, type ConnectionState } from "../connection";

const LABELS: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  polling: "Polling",
};

/** Always in the header: whether changes arrive over the socket or by polling. */
export function ConnectionBadge() {
  const state = useConnectionState();
  return (
    <span className={`connection connection-${state}`} role="status" data-state={state}>
      {LABELS[state]}
    </span>
  );
}
