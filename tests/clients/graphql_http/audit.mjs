// Runs graphql-http's server audit (the GraphQL-over-HTTP spec's own) against the URL
// given, sending the API key given, and prints each audit's id, name, status and reason
// as JSON for tests/clients/test_graphql_http.py to read.
import { auditServer } from "graphql-http";

const [url, key] = process.argv.slice(2);

function withKey(input, init = {}) {
  const headers = new Headers(init.headers);
  if (key) headers.set("authorization", `Bearer ${key}`);
  return fetch(input, { ...init, headers });
}

const results = await auditServer({ url, fetchFn: withKey });
const report = [];
for (const result of results) {
  const entry = { id: result.id, name: result.name, status: result.status };
  if (result.status !== "ok") {
    entry.reason = result.reason;
    const response = result.response;
    entry.got = { status: response.status, contentType: response.headers.get("content-type") };
    entry.body = (await response.text()).slice(0, 300);
  }
  report.push(entry);
}
console.log(JSON.stringify(report));
