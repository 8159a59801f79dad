import { useState, type DragEvent, type FormEvent, type ReactNode } from "react";
import { useMutation } from "@apollo/client/react";
import { useNavigate } from "react-router";
import type { CreateTaskInput, TaskKind, TaskPriority } from "../gql/graphql";
import { CREATE_TASK } from "../operations";

type Operation = { op: string; [param: string]: string };
type GroupBy = { by: string; column: string; aggregations: string };

// The image operations the builder offers, with the numbers each one takes.
const IMAGE_OPERATIONS: Record<string, string[]> = {
  resize: ["width", "height"],
  thumbnail: ["width", "height"],
  rotate: ["degrees"],
  grayscale: [],
  blur: ["radius"],
  sharpen: [],
  convert: ["format"],
};
const AGGREGATIONS = "count, sum, mean, median, min, max, std, nunique";

function imageParams(operations: Operation[]): Record<string, unknown> {
  return {
    operations: operations.map(({ op, ...values }) => {
      const params: Record<string, unknown> = { op };
      for (const name of IMAGE_OPERATIONS[op] ?? []) {
        const value = values[name] ?? "";
        params[name] = name === "format" ? value : Number(value);
      }
      return params;
    }),
  };
}

function dataParams(groups: GroupBy[]): Record<string, unknown> {
  const split = (text: string) => text.split(",").map((part) => part.trim()).filter(Boolean);
  return {
    groupBy: groups
      .filter((group) => group.by.trim())
      .map((group) => ({
        by: split(group.by),
        aggregations: group.column.trim() ? { [group.column.trim()]: split(group.aggregations) } : {},
      })),
  };
}

/** A labelled field with the server's ValidationError for it, if any. */
function Field({ name, label, errors, children }: { name: string; label: string; errors: Record<string, string>; children: ReactNode }) {
  return (
    <div className="field" data-field={name}>
      <label>
        <span>{label}</span>
        {children}
      </label>
      {errors[name] && (
        <p className="field-error" role="alert" data-error-for={name}>
          {errors[name]}
        </p>
      )}
    </div>
  );
}

function FilePicker({ file, onFile, accept }: { file: File | null; onFile: (file: File | null) => void; accept: string }) {
  const [over, setOver] = useState(false);
  const drop = (event: DragEvent) => {
    event.preventDefault();
    setOver(false);
    onFile(event.dataTransfer.files[0] ?? null);
  };
  return (
    <div
      className={over ? "dropzone over" : "dropzone"}
      onDragOver={(event) => {
        event.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={drop}
    >
      <input type="file" aria-label="File" accept={accept} onChange={(event) => onFile(event.target.files?.[0] ?? null)} />
      <span className="muted">{file ? `${file.name} (${file.size} bytes)` : "or drop a file here"}</span>
    </div>
  );
}

export function NewTaskForm() {
  const navigate = useNavigate();
  const [createTask, { loading }] = useMutation(CREATE_TASK);
  const [kind, setKind] = useState<TaskKind>("TEXT_GENERATION");
  const [prompt, setPrompt] = useState("");
  const [model, setModel] = useState("");
  const [priority, setPriority] = useState<TaskPriority>("NORMAL");
  const [delay, setDelay] = useState("");
  const [timeout, setTimeoutSeconds] = useState("");
  const [idempotencyKey, setIdempotencyKey] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [operations, setOperations] = useState<Operation[]>([{ op: "thumbnail", width: "64", height: "64" }]);
  const [groups, setGroups] = useState<GroupBy[]>([{ by: "", column: "", aggregations: "sum" }]);
  const [errors, setErrors] = useState<Record<string, string>>({});

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setErrors({});
    const input: CreateTaskInput = { kind, prompt, priority };
    if (model.trim()) input.model = model.trim();
    if (delay.trim()) input.delaySeconds = Number(delay);
    if (timeout.trim()) input.timeoutSeconds = Number(timeout);
    if (idempotencyKey.trim()) input.idempotencyKey = idempotencyKey.trim();
    if (kind !== "TEXT_GENERATION") {
      if (file) input.files = [{ name: file.name, upload: file }];
      input.params = kind === "IMAGE_PROCESSING" ? imageParams(operations) : dataParams(groups);
    }
    try {
      const { data } = await createTask({ variables: { input } });
      const result = data?.createTask;
      if (result?.__typename === "Task") navigate(`/tasks/${result.id}`);
      else if (result?.__typename === "ValidationError") setErrors({ [result.field ?? "form"]: result.message });
      else if (result?.__typename === "RateLimited") {
        const wait = result.retryAfterSeconds;
        setErrors({ form: wait ? `${result.message} Try again in ${wait} s.` : result.message });
      }
    } catch (error) {
      setErrors({ form: (error as Error).message });
    }
  };

  return (
    <form className="new-task" onSubmit={submit}>
      <h1>New task</h1>
      <Field name="kind" label="Kind" errors={errors}>
        <select value={kind} onChange={(event) => setKind(event.target.value as TaskKind)}>
          <option value="TEXT_GENERATION">Text generation</option>
          <option value="IMAGE_PROCESSING">Image processing</option>
          <option value="DATA_ANALYSIS">Data analysis</option>
        </select>
      </Field>
      <Field name="prompt" label="Prompt" errors={errors}>
        <textarea rows={4} value={prompt} onChange={(event) => setPrompt(event.target.value)} />
      </Field>
      {kind !== "TEXT_GENERATION" && (
        <Field name="files" label={kind === "IMAGE_PROCESSING" ? "Image" : "CSV or JSON file"} errors={errors}>
          <FilePicker file={file} onFile={setFile} accept={kind === "IMAGE_PROCESSING" ? "image/*" : ".csv,.json,text/csv,application/json"} />
        </Field>
      )}
      {kind === "IMAGE_PROCESSING" && (
        <Field name="params" label="Operations" errors={errors}>
          <OperationsBuilder operations={operations} onChange={setOperations} />
        </Field>
      )}
      {kind === "DATA_ANALYSIS" && (
        <Field name="params" label="Group by" errors={errors}>
          <GroupByBuilder groups={groups} onChange={setGroups} />
        </Field>
      )}
      <div className="row">
        <Field name="model" label="Model" errors={errors}>
          <input value={model} placeholder="the server's default" onChange={(event) => setModel(event.target.value)} />
        </Field>
        <Field name="priority" label="Priority" errors={errors}>
          <select value={priority} onChange={(event) => setPriority(event.target.value as TaskPriority)}>
            <option>HIGH</option>
            <option>NORMAL</option>
            <option>LOW</option>
          </select>
        </Field>
      </div>
      <div className="row">
        <Field name="delaySeconds" label="Delay (s)" errors={errors}>
          <input inputMode="decimal" value={delay} onChange={(event) => setDelay(event.target.value)} />
        </Field>
        <Field name="timeoutSeconds" label="Timeout (s)" errors={errors}>
          <input inputMode="decimal" value={timeout} onChange={(event) => setTimeoutSeconds(event.target.value)} />
        </Field>
        <Field name="idempotencyKey" label="Idempotency key" errors={errors}>
          <input value={idempotencyKey} onChange={(event) => setIdempotencyKey(event.target.value)} />
        </Field>
      </div>
      {errors.form && (
        <p className="error" role="alert">
          {errors.form}
        </p>
      )}
      {Object.keys(errors).some((name) => !FORM_FIELDS.has(name)) && (
        <p className="error" role="alert">
          {Object.entries(errors)
            .filter(([name]) => !FORM_FIELDS.has(name))
            .map(([name, message]) => `${name}: ${message}`)
            .join(" ")}
        </p>
      )}
      <button type="submit" disabled={loading}>
        Create task
      </button>
    </form>
  );
}

const FORM_FIELDS = new Set(["form", "kind", "prompt", "files", "params", "model", "priority", "delaySeconds", "timeoutSeconds", "idempotencyKey"]);

function OperationsBuilder({ operations, onChange }: { operations: Operation[]; onChange: (operations: Operation[]) => void }) {
  const set = (index: number, operation: Operation) => onChange(operations.map((old, at) => (at === index ? operation : old)));
  return (
    <div className="builder">
      {operations.map((operation, index) => (
        <div className="builder-row" key={index}>
          <select aria-label={`Operation ${index + 1}`} value={operation.op} onChange={(event) => set(index, { op: event.target.value })}>
            {Object.keys(IMAGE_OPERATIONS).map((op) => (
              <option key={op}>{op}</option>
            ))}
          </select>
          {(IMAGE_OPERATIONS[operation.op] ?? []).map((name) => (
            <input
              key={name}
              aria-label={name}
              placeholder={name}
              value={operation[name] ?? ""}
              onChange={(event) => set(index, { ...operation, [name]: event.target.value })}
            />
          ))}
          <button type="button" onClick={() => onChange(operations.filter((_, at) => at !== index))}>
            Remove
          </button>
        </div>
      ))}
      <button type="button" onClick={() => onChange([...operations, { op: "grayscale" }])}>
        Add operation
      </button>
    </div>
  );
}

function GroupByBuilder({ groups, onChange }: { groups: GroupBy[]; onChange: (groups: GroupBy[]) => void }) {
  const set = (index: number, group: GroupBy) => onChange(groups.map((old, at) => (at === index ? group : old)));
  return (
    <div className="builder">
      {groups.map((group, index) => (
        <div className="builder-row" key={index}>
          <input aria-label="Group by columns" placeholder="by columns, comma-separated" value={group.by} onChange={(event) => set(index, { ...group, by: event.target.value })} />
          <input aria-label="Aggregated column" placeholder="column" value={group.column} onChange={(event) => set(index, { ...group, column: event.target.value })} />
          <input aria-label="Aggregations" placeholder={AGGREGATIONS} value={group.aggregations} onChange={(event) => set(index, { ...group, aggregations: event.target.value })} />
          <button type="button" onClick={() => onChange(groups.filter((_, at) => at !== index))}>
            Remove
          </button>
        </div>
      ))}
      <button type="button" onClick={() => onChange([...groups, { by: "", column: "", aggregations: "sum" }])}>
        Add group-by
      </button>
    </div>
  );
}
