/* eslint-disable */
import * as types from './graphql';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  fragment TaskText on Task {\n    id\n    sequence\n    result\n  }\n": typeof types.TaskTextFragmentDoc,
    "\n  fragment TaskRow on Task {\n    id\n    kind\n    model\n    prompt\n    status\n    progress\n    stage\n    sequence\n    createdAt\n  }\n": typeof types.TaskRowFragmentDoc,
    "\n  fragment TaskDetail on Task {\n    ...TaskRow\n    priority\n    updatedAt\n    startedAt\n    finishedAt\n    scheduledFor\n    attempts\n    timeoutSeconds\n    cancelRequestedAt\n    error\n    lastError\n    errors {\n      attempt\n      message\n      at\n      transient\n    }\n    params\n    inputs {\n      name\n      contentType\n      size\n    }\n    output\n    artifacts {\n      name\n      contentType\n      size\n      url\n    }\n  }\n": typeof types.TaskDetailFragmentDoc,
    "\n  query Tasks($first: Int, $after: String, $status: TaskStatus) {\n    tasks(first: $first, after: $after, status: $status) {\n      edges {\n        cursor\n        node {\n          ...TaskRow\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n": typeof types.TasksDocument,
    "\n  subscription TaskUpdates {\n    taskUpdates {\n      sequence\n      task {\n        ...TaskRow\n      }\n    }\n  }\n": typeof types.TaskUpdatesDocument,
    "\n  query Task($id: ID!) {\n    task(id: $id) {\n      ...TaskDetail\n      result\n    }\n  }\n": typeof types.TaskDocument,
    "\n  subscription TaskStatus($id: ID!, $after: Int) {\n    taskStatus(id: $id, after: $after) {\n      sequence\n      delta\n      task {\n        ...TaskDetail\n      }\n    }\n  }\n": typeof types.TaskStatusDocument,
    "\n  mutation CreateTask($input: CreateTaskInput!) {\n    createTask(input: $input) {\n      __typename\n      ... on Task {\n        ...TaskRow\n      }\n      ... on ValidationError {\n        field\n        message\n      }\n      ... on RateLimited {\n        message\n        retryAfterSeconds\n      }\n    }\n  }\n": typeof types.CreateTaskDocument,
    "\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      __typename\n      ... on Task {\n        ...TaskDetail\n        result\n      }\n      ... on TaskStateError {\n        message\n      }\n      ... on TaskNotFound {\n        message\n      }\n      ... on RateLimited {\n        message\n      }\n    }\n  }\n": typeof types.CancelTaskDocument,
    "\n  mutation RetryTask($id: ID!) {\n    retryTask(id: $id) {\n      __typename\n      ... on Task {\n        ...TaskDetail\n        result\n      }\n      ... on TaskStateError {\n        message\n      }\n      ... on TaskNotFound {\n        message\n      }\n      ... on RateLimited {\n        message\n      }\n    }\n  }\n": typeof types.RetryTaskDocument,
};
const documents: Documents = {
    "\n  fragment TaskText on Task {\n    id\n    sequence\n    result\n  }\n": types.TaskTextFragmentDoc,
    "\n  fragment TaskRow on Task {\n    id\n    kind\n    model\n    prompt\n    status\n    progress\n    stage\n    sequence\n    createdAt\n  }\n": types.TaskRowFragmentDoc,
    "\n  fragment TaskDetail on Task {\n    ...TaskRow\n    priority\n    updatedAt\n    startedAt\n    finishedAt\n    scheduledFor\n    attempts\n    timeoutSeconds\n    cancelRequestedAt\n    error\n    lastError\n    errors {\n      attempt\n      message\n      at\n      transient\n    }\n    params\n    inputs {\n      name\n      contentType\n      size\n    }\n    output\n    artifacts {\n      name\n      contentType\n      size\n      url\n    }\n  }\n": types.TaskDetailFragmentDoc,
    "\n  query Tasks($first: Int, $after: String, $status: TaskStatus) {\n    tasks(first: $first, after: $after, status: $status) {\n      edges {\n        cursor\n        node {\n          ...TaskRow\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n": types.TasksDocument,
    "\n  subscription TaskUpdates {\n    taskUpdates {\n      sequence\n      task {\n        ...TaskRow\n      }\n    }\n  }\n": types.TaskUpdatesDocument,
    "\n  query Task($id: ID!) {\n    task(id: $id) {\n      ...TaskDetail\n      result\n    }\n  }\n": types.TaskDocument,
    "\n  subscription TaskStatus($id: ID!, $after: Int) {\n    taskStatus(id: $id, after: $after) {\n      sequence\n      delta\n      task {\n        ...TaskDetail\n      }\n    }\n  }\n": types.TaskStatusDocument,
    "\n  mutation CreateTask($input: CreateTaskInput!) {\n    createTask(input: $input) {\n      __typename\n      ... on Task {\n        ...TaskRow\n      }\n      ... on ValidationError {\n        field\n        message\n      }\n      ... on RateLimited {\n        message\n        retryAfterSeconds\n      }\n    }\n  }\n": types.CreateTaskDocument,
    "\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      __typename\n      ... on Task {\n        ...TaskDetail\n        result\n      }\n      ... on TaskStateError {\n        message\n      }\n      ... on TaskNotFound {\n        message\n      }\n      ... on RateLimited {\n        message\n      }\n    }\n  }\n": types.CancelTaskDocument,
    "\n  mutation RetryTask($id: ID!) {\n    retryTask(id: $id) {\n      __typename\n      ... on Task {\n        ...TaskDetail\n        result\n      }\n      ... on TaskStateError {\n        message\n      }\n      ... on TaskNotFound {\n        message\n      }\n      ... on RateLimited {\n        message\n      }\n    }\n  }\n": types.RetryTaskDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment TaskText on Task {\n    id\n    sequence\n    result\n  }\n"): (typeof documents)["\n  fragment TaskText on Task {\n    id\n    sequence\n    result\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment TaskRow on Task {\n    id\n    kind\n    model\n    prompt\n    status\n    progress\n    stage\n    sequence\n    createdAt\n  }\n"): (typeof documents)["\n  fragment TaskRow on Task {\n    id\n    kind\n    model\n    prompt\n    status\n    progress\n    stage\n    sequence\n    createdAt\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment TaskDetail on Task {\n    ...TaskRow\n    priority\n    updatedAt\n    startedAt\n    finishedAt\n    scheduledFor\n    attempts\n    timeoutSeconds\n    cancelRequestedAt\n    error\n    lastError\n    errors {\n      attempt\n      message\n      at\n      transient\n    }\n    params\n    inputs {\n      name\n      contentType\n      size\n    }\n    output\n    artifacts {\n      name\n      contentType\n      size\n      url\n    }\n  }\n"): (typeof documents)["\n  fragment TaskDetail on Task {\n    ...TaskRow\n    priority\n    updatedAt\n    startedAt\n    finishedAt\n    scheduledFor\n    attempts\n    timeoutSeconds\n    cancelRequestedAt\n    error\n    lastError\n    errors {\n      attempt\n      message\n      at\n      transient\n    }\n    params\n    inputs {\n      name\n      contentType\n      size\n    }\n    output\n    artifacts {\n      name\n      contentType\n      size\n      url\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Tasks($first: Int, $after: String, $status: TaskStatus) {\n    tasks(first: $first, after: $after, status: $status) {\n      edges {\n        cursor\n        node {\n          ...TaskRow\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n"): (typeof documents)["\n  query Tasks($first: Int, $after: String, $status: TaskStatus) {\n    tasks(first: $first, after: $after, status: $status) {\n      edges {\n        cursor\n        node {\n          ...TaskRow\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription TaskUpdates {\n    taskUpdates {\n      sequence\n      task {\n        ...TaskRow\n      }\n    }\n  }\n"): (typeof documents)["\n  subscription TaskUpdates {\n    taskUpdates {\n      sequence\n      task {\n        ...TaskRow\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Task($id: ID!) {\n    task(id: $id) {\n      ...TaskDetail\n      result\n    }\n  }\n"): (typeof documents)["\n  query Task($id: ID!) {\n    task(id: $id) {\n      ...TaskDetail\n      result\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription TaskStatus($id: ID!, $after: Int) {\n    taskStatus(id: $id, after: $after) {\n      sequence\n      delta\n      task {\n        ...TaskDetail\n      }\n    }\n  }\n"): (typeof documents)["\n  subscription TaskStatus($id: ID!, $after: Int) {\n    taskStatus(id: $id, after: $after) {\n      sequence\n      delta\n      task {\n        ...TaskDetail\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateTask($input: CreateTaskInput!) {\n    createTask(input: $input) {\n      __typename\n      ... on Task {\n        ...TaskRow\n      }\n      ... on ValidationError {\n        field\n        message\n      }\n      ... on RateLimited {\n        message\n        retryAfterSeconds\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation CreateTask($input: CreateTaskInput!) {\n    createTask(input: $input) {\n      __typename\n      ... on Task {\n        ...TaskRow\n      }\n      ... on ValidationError {\n        field\n        message\n      }\n      ... on RateLimited {\n        message\n        retryAfterSeconds\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      __typename\n      ... on Task {\n        ...TaskDetail\n        result\n      }\n      ... on TaskStateError {\n        message\n      }\n      ... on TaskNotFound {\n        message\n      }\n      ... on RateLimited {\n        message\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      __typename\n      ... on Task {\n        ...TaskDetail\n        result\n      }\n      ... on TaskStateError {\n        message\n      }\n      ... on TaskNotFound {\n        message\n      }\n      ... on RateLimited {\n        message\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RetryTask($id: ID!) {\n    retryTask(id: $id) {\n      __typename\n      ... on Task {\n        ...TaskDetail\n        result\n      }\n      ... on TaskStateError {\n        message\n      }\n      ... on TaskNotFound {\n        message\n      }\n      ... on RateLimited {\n        message\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation RetryTask($id: ID!) {\n    retryTask(id: $id) {\n      __typename\n      ... on Task {\n        ...TaskDetail\n        result\n      }\n      ... on TaskStateError {\n        message\n      }\n      ... on TaskNotFound {\n        message\n      }\n      ... on RateLimited {\n        message\n      }\n    }\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;