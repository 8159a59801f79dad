import { Link, Outlet } from "react-router";
import { ConnectionBadge } from "./ConnectionBadge";

async function logOut() {
  // The header makes this a request no other site's page can send (CSRF).
  await fetch("/logout", { method: "POST", credentials: "same-origin", headers: { "GraphQL-Require-Preflight": "1" } });
  window.location.assign("/login");
}

export function Layout() {
  return (
    <>
      <header className="top">
        <Link to="/" className="brand">
          aitasks
        </Link>
        <nav>
          <Link to="/">Tasks</Link>
          <Link to="/new">New task</Link>
          {/* A full page load: GraphiQL is its own bundle, which the dashboard never loads. */}
          <a href="/graphql">GraphiQL</a>
        </nav>
        <ConnectionBadge />
        <button type="button" className="link" onClick={logOut}>
          Log out
        </button>
      </header>
      <main>
        <Outlet />
      </main>
    </>
  );
}
