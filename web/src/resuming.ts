// A subscription that survives a lost socket: on an error it subscribes again, with
// variables made afresh (a `taskStatus` resumes `after:` the last sequence shown).
import { useEffect, useRef } from "react";
import { useApolloClient } from "@apollo/client/react";
import type { TypedDocumentNode } from "@apollo/client";
import { connection } from "./connection";

export function useResumingSubscription<TData, TVariables extends Record<string, unknown>>(
  query: TypedDocumentNode<TData, TVariables>,
  options: {
    variables: () => TVariables;
    onData: (data: TData) => void;
    skip?: boolean;
    // A subscription that should never end (a list's) starts again when it does.
    resumeOnComplete?: boolean;
    key: string;
  },
): void {
  const client = useApolloClient();
  const latest = useRef(options);
  latest.current = options;
  const { skip, key } = options;

  useEffect(() => {
    if (skip) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let current: { unsubscribe(): void } | undefined;

    const again = () => {
      current?.unsubscribe();
      current = undefined;
      if (stopped || timer !== undefined) return;
      timer = setTimeout(() => {
        timer = undefined;
        start();
      }, connection.retryDelay());
    };
    const start = () => {
      current = client
        .subscribe({ query, variables: latest.current.variables(), fetchPolicy: "no-cache" })
        .subscribe({
          next: (result) => {
            if (result.error) again();
            else if (result.data) latest.current.onData(result.data as TData);
          },
          error: again,
          complete: () => {
            if (latest.current.resumeOnComplete) again();
          },
        });
    };
    start();
    return () => {
      stopped = true;
      clearTimeout(timer);
      current?.unsubscribe();
    };
  }, [client, query, skip, key]);
}
