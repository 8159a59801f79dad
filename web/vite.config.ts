// Two pages from one build: the dashboard (index.html) and GraphiQL (graphiql.html),
// each with its own chunks, so the dashboard never loads GraphiQL's editor. The output
// goes inside the Python package, with gzip and Brotli copies for the server to send.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { brotliCompress, constants, gzip } from "node:zlib";
import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin } from "vite";

const OUT_DIR = "../graphql_app/web_dist";
// Files worth compressing; images and fonts are compressed already.
const COMPRESSIBLE = /\.(js|mjs|css|html|svg|json|txt|map)$/;
// Below this a compressed copy saves less than its headers cost.
const COMPRESS_MIN_BYTES = 512;

async function* files(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else yield path;
  }
}

/** Writes NAME.gz and NAME.br next to each compressible file of the build. */
function precompress(): Plugin {
  const gzipAsync = promisify(gzip);
  const brotliAsync = promisify(brotliCompress);
  return {
    name: "aitasks-precompress",
    apply: "build",
    async closeBundle() {
      for await (const path of files(OUT_DIR)) {
        if (!COMPRESSIBLE.test(path)) continue;
        const data = await readFile(path);
        if (data.length < COMPRESS_MIN_BYTES) continue;
        await writeFile(`${path}.gz`, await gzipAsync(data, { level: 9 }));
        const params = { [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY };
        await writeFile(`${path}.br`, await brotliAsync(data, { params }));
      }
    },
  };
}

export default defineConfig({
  plugins: [react(), precompress()],
  build: {
    outDir: OUT_DIR,
    emptyOutDir: true,
    // The polyfill would be an inline script, which the Content-Security-Policy forbids;
    // every browser the app supports has modulepreload.
    modulePreload: { polyfill: false },
    // GraphiQL's editor (Monaco) is large by nature and only ever loads on its own page.
    chunkSizeWarningLimit: 4096,
    rollupOptions: {
      input: { index: "index.html", graphiql: "graphiql.html" },
      onwarn(warning, warn) {
        // GraphiQL's packages mark modules "use no memo" for the React compiler, which
        // this build does not run; the directive has nothing to preserve here.
        if (warning.code === "MODULE_LEVEL_DIRECTIVE") return;
        warn(warning);
      },
    },
  },
});
