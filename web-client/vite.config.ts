import { defineConfig } from 'vite';

// Static files only: the bridge serves dist/ itself (--web-root), so asset URLs stay relative.
// Pages: the meeting (index.html), the technicians' dashboard (dashboard.html) and the
// administration (admin.html).
export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: {
      input: {
        main: new URL('./index.html', import.meta.url).pathname,
        dashboard: new URL('./dashboard.html', import.meta.url).pathname,
        admin: new URL('./admin.html', import.meta.url).pathname,
      },
    },
  },
});
