import { fileURLToPath } from "node:url";

import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The bundle is written INSIDE the events_api package: events-api serves it at /console/
// (apps/events_api/routes/console.py), and the events-api image, which copies
// apps/events_api/, ships it. `npm run dev` proxies /api to a local events-api instead.
export default defineConfig({
  base: "/console/",
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL("../events_api/console", import.meta.url)),
    emptyOutDir: true,
    // No inline <script> or data: modules: the page's CSP is script-src 'self'.
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: {
    proxy: { "/api": process.env.EVENTS_API_URL ?? "http://127.0.0.1:8000" },
  },
});
