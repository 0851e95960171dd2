import { defineConfig } from 'vite';

// JSX through esbuild's own transform (no React plugin needed).
export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'react' },
  server: { host: '127.0.0.1', port: 8080, strictPort: true },
  preview: { host: '127.0.0.1', port: 8080, strictPort: true },
  build: { outDir: 'dist', emptyOutDir: true },
  test: { include: ['src/**/*.test.js'], environment: 'node' },
});
