import "./styles.css";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { ApolloProvider } from "@apollo/client/react";
import { BrowserRouter, Route, Routes } from "react-router";
import { client } from "./apollo";
import { Layout } from "./components/Layout";
import { NewTaskForm } from "./components/NewTaskForm";
import { TaskList } from "./components/TaskList";
import { TaskPage } from "./components/TaskPage";

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <ApolloProvider client={client}>
      <BrowserRouter>
        <Routes>
          <Route element={<Layout />}>
            <Route index element={<TaskList />} />
            <Route path="new" element={<NewTaskForm />} />
            <Route path="tasks/:id" element={<TaskPage />} />
            <Route path="*" element={<p>There is no page here.</p>} />
          </Route>
        </Routes>
      </BrowserRouter>
    </ApolloProvider>
  </StrictMode>,
);
