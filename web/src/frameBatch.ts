// Changes that arrive between two frames, applied together in the next one: a busy list
// gets one cache write and one render per frame, however many changes its socket brings.
import { useCallback, useEffect, useRef } from "react";

// A hidden page gets no animation frames: changes wait at most this long there.
export const FRAME_BATCH_MAX_WAIT_MS = 250;

/** Returns `add(item)`: items are kept, the latest per key (by `isNewer`), and given to
 * `apply` in the next animation frame, in the order their keys first arrived. */
export function useFrameBatch<T>(
  apply: (items: T[]) => void,
  keyOf: (item: T) => string,
  isNewer: (item: T, than: T) => boolean,
): (item: T) => void {
  const latest = useRef({ apply, keyOf, isNewer });
  latest.current = { apply, keyOf, isNewer };
  const state = useRef({
    pending: new Map<string, T>(),
    frame: undefined as number | undefined,
    timer: undefined as ReturnType<typeof setTimeout> | undefined,
  });

  const flush = useCallback(() => {
    const current = state.current;
    if (current.frame !== undefined) cancelAnimationFrame(current.frame);
    clearTimeout(current.timer);
    current.frame = undefined;
    current.timer = undefined;
    if (current.pending.size === 0) return;
    const items = [...current.pending.values()];
    current.pending = new Map();
    latest.current.apply(items);
  }, []);

  useEffect(
    () => () => {
      const current = state.current;
      if (current.frame !== undefined) cancelAnimationFrame(current.frame);
      clearTimeout(current.timer);
      current.frame = undefined;
      current.timer = undefined;
      current.pending.clear();
    },
    [],
  );

  return useCallback(
    (item: T) => {
      const current = state.current;
      const key = latest.current.keyOf(item);
      const waiting = current.pending.get(key);
      if (waiting === undefined || latest.current.isNewer(item, waiting)) current.pending.set(key, item);
      if (current.frame === undefined) {
        current.frame = requestAnimationFrame(flush);
        current.timer = setTimeout(flush, FRAME_BATCH_MAX_WAIT_MS);
      }
    },
    [flush],
  );
}
