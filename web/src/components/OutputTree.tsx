// A task's `output` (JSON) as a readable tree; a list of flat records shows as a table
// (a data task's group-by rows).

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isRecordList(value: Json): value is { [key: string]: Json }[] {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every(
      (row) =>
        row !== null &&
        typeof row === "object" &&
        !Array.isArray(row) &&
        Object.values(row).every((cell) => cell === null || typeof cell !== "object"),
    )
  );
}

export function RecordTable({ rows }: { rows: { [key: string]: Json }[] }) {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  return (
    <table className="records">
      <thead>
        <tr>
          {columns.map((column) => (
            <th key={column}>{column}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((row, index) => (
          <tr key={index}>
            {columns.map((column) => (
              <td key={column}>{String(row[column] ?? "")}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function OutputTree({ value, name }: { value: Json; name?: string }) {
  const label = name !== undefined ? <span className="key">{name}: </span> : null;
  if (value === null || typeof value !== "object") {
    return (
      <li>
        {label}
        <span className="scalar">{JSON.stringify(value)}</span>
      </li>
    );
  }
  const body = isRecordList(value) ? (
    <RecordTable rows={value} />
  ) : (
    <ul>
      {Array.isArray(value)
        ? value.map((item, index) => <OutputTree key={index} value={item} name={String(index)} />)
        : Object.entries(value).map(([key, item]) => <OutputTree key={key} value={item} name={key} />)}
    </ul>
  );
  const root = name === undefined;
  return root ? (
    <ul className="tree">
      <li>{body}</li>
    </ul>
  ) : (
    <li>
      <details open>
        <summary>{label}</summary>
        {body}
      </details>
    </li>
  );
}

export type { Json };
