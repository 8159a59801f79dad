// Every operation the app sends, typed by GraphQL Code Generator (src/gql/).
import { graphql } from "./gql";

export const TASK_ROW = graphql(`
  fragment TaskRow on Task {
    id
    kind
    model
    prompt
    status
    progress
    stage
    sequence
    createdAt
  }
`);

export const TASK_DETAIL = graphql(`
  fragment TaskDetail on Task {
    ...TaskRow
    priority
    updatedAt
    startedAt
    finishedAt
    scheduledFor
    attempts
    timeoutSeconds
    cancelRequestedAt
    error
    lastError
    errors {
      attempt
      message
      at
      transient
    }
    params
    inputs {
      name
      contentType
      size
    }
    output
    artifacts {
      name
      contentType
      size
      url
    }
  }
`);

export const TASKS = graphql(`
  query Tasks($first: Int, $after: String, $status: TaskStatus) {
    tasks(first: $first, after: $after, status: $status) {
      edges {
        cursor
        node {
          ...TaskRow
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

export const TASK_UPDATES = graphql(`
  subscription TaskUpdates {
    taskUpdates {
      sequence
      task {
        ...TaskRow
      }
    }
  }
`);

export const TASK = graphql(`
  query Task($id: ID!) {
    task(id: $id) {
      ...TaskDetail
      result
    }
  }
`);

// The text arrives as `delta`s; the task's own fields ride along without `result`, so a
// long text is sent once, not again with every token.
export const TASK_STATUS = graphql(`
  subscription TaskStatus($id: ID!, $after: Int) {
    taskStatus(id: $id, after: $after) {
      sequence
      delta
      task {
        ...TaskDetail
      }
    }
  }
`);

export const CREATE_TASK = graphql(`
  mutation CreateTask($input: CreateTaskInput!) {
    createTask(input: $input) {
      __typename
      ... on Task {
        ...TaskRow
      }
      ... on ValidationError {
        field
        message
      }
      ... on RateLimited {
        message
        retryAfterSeconds
      }
    }
  }
`);

export const CANCEL_TASK = graphql(`
  mutation CancelTask($id: ID!) {
    cancelTask(id: $id) {
      __typename
      ... on Task {
        ...TaskDetail
        result
      }
      ... on TaskStateError {
        message
      }
      ... on TaskNotFound {
        message
      }
      ... on RateLimited {
        message
      }
    }
  }
`);

export const RETRY_TASK = graphql(`
  mutation RetryTask($id: ID!) {
    retryTask(id: $id) {
      __typename
      ... on Task {
        ...TaskDetail
        result
      }
      ... on TaskStateError {
        message
      }
      ... on TaskNotFound {
        message
      }
      ... on RateLimited {
        message
      }
    }
  }
`);
