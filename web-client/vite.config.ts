import { defineConfig } from 'vite';

// Static files only: the bridge serves dist/ itself (--web-root), so asset URLs stay relative.
export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
  },
});
