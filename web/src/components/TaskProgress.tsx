export function TaskProgress({ progress }: { progress: number }) {
  const percent = Math.round(progress * 100);
  return (
    <div
      className="progress"
      role="progressbar"
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={percent}
      title={`${percent}%`}
    >
      <div className="progress-bar" style={{ width: `${percent}%` }} />
    </div>
  );
}
