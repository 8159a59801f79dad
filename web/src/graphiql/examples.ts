// The tabs GraphiQL opens with on a first visit: one for each thing people try first.
export const EXAMPLES = [
  {
    query: `# Create a task; keep the id it returns for the next tab.
mutation CreateTask {
  createTask(input: { prompt: "Write a haiku about queues" }) {
    __typename
    ... on Task { id status model }
    ... on ValidationError { field message }
    ... on RateLimited { message retryAfterSeconds }
  }
}
`,
  },
  {
    query: `# Watch a task to its end: paste the id from createTask into the variables.
subscription TaskStatus($id: ID!) {
  taskStatus(id: $id) {
    sequence
    status
    progress
    stage
    delta
  }
}
`,
    variables: `{ "id": "" }`,
  },
  {
    query: `# Your tasks, newest first.
query Tasks {
  tasks(first: 10) {
    edges { node { id kind status progress createdAt } }
    pageInfo { hasNextPage endCursor }
  }
}
`,
  },
];
