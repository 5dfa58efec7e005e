/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The API serves index.html at `/` and the hashed files under `/assets/` (a prefix no
// API route uses), so the bundle's URLs are absolute from the root.
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    // The committed bundle must be reproducible from the sources.
    sourcemap: false,
  },
  server: {
    // `npm run dev` talks to a local attendance-api.
    proxy: Object.fromEntries(
      ['/classes', '/students', '/attendance', '/jobs', '/faces', '/export', '/analytics', '/webhooks', '/keys'].map(
        (p) => [p, process.env.API_URL ?? 'http://127.0.0.1:8080'],
      ),
    ),
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts', 'src/**/*.test.tsx'],
  },
});
