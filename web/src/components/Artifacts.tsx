import { useEffect, useState } from "react";
import type { TaskDetailFragment } from "../gql/graphql";

// Rows of a CSV artifact shown in the preview; the download has them all.
const CSV_PREVIEW_ROWS = 20;

type Artifact = TaskDetailFragment["artifacts"][number];

/** A small CSV reader for a preview: quoted fields, doubled quotes, CRLF. */
export function parseCsv(text: string, maxRows: number): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let index = 0; index < text.length && rows.length < maxRows; index++) {
    const char = text[index];
    if (quoted) {
      if (char === '"' && text[index + 1] === '"') {
        field += '"';
        index++;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') quoted = true;
    else if (char === ",") {
      row.push(field);
      field = "";
    } else if (char === "\n" || char === "\r") {
      if (char === "\r" && text[index + 1] === "\n") index++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += char;
  }
  if ((field || row.length) && rows.length < maxRows) rows.push([...row, field]);
  return rows;
}

function CsvPreview({ url }: { url: string }) {
  const [rows, setRows] = useState<string[][] | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    fetch(url, { credentials: "same-origin", signal: controller.signal })
      .then((response) => (response.ok ? response.text() : Promise.reject(response.statusText)))
      .then((text) => setRows(parseCsv(text, CSV_PREVIEW_ROWS + 1)))
      .catch(() => setRows(null));
    return () => controller.abort();
  }, [url]);
  if (!rows || rows.length === 0) return null;
  const [header, ...body] = rows;
  return (
    <table className="records csv-preview">
      <thead>
        <tr>
          {header!.map((cell, index) => (
            <th key={index}>{cell}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {body.map((row, index) => (
          <tr key={index}>
            {row.map((cell, column) => (
              <td key={column}>{cell}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function ArtifactView({ artifact }: { artifact: Artifact }) {
  const kib = (artifact.size / 1024).toFixed(1);
  return (
    <li>
      <a href={artifact.url} download={artifact.name}>
        {artifact.name}
      </a>{" "}
      <span className="muted">
        {artifact.contentType}, {kib} KiB
      </span>
      {artifact.contentType.startsWith("image/") && (
        <div>
          <img className="preview" src={artifact.url} alt={`Result ${artifact.name}`} />
        </div>
      )}
      {artifact.contentType.startsWith("text/csv") && <CsvPreview url={artifact.url} />}
    </li>
  );
}

export function Artifacts({ artifacts }: { artifacts: Artifact[] }) {
  if (artifacts.length === 0) return null;
  return (
    <section>
      <h2>Artifacts</h2>
      <ul className="artifacts">
        {artifacts.map((artifact) => (
          <ArtifactView key={artifact.name} artifact={artifact} />
        ))}
      </ul>
    </section>
  );
}
