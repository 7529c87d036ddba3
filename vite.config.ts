/**
 * The visualizer's build: src/ui/web/ -> dist/web/, one classic script (IIFE) and one stylesheet
 * with relative URLs, so the folder works from any host and opened from disk (file://, where module
 * scripts are refused), and loads under the server's CSP (no inline script or style).
 */
import { defineConfig, type Plugin } from 'vite';

const classicScript: Plugin = {
  name: 'guestmem-classic-script',
  enforce: 'post',
  transformIndexHtml: (html) => html.replace(/<script type="module" crossorigin src=/g, '<script defer src=').replace(/ crossorigin(?=[ >])/g, ''),
};

export default defineConfig({
  root: 'src/ui/web',
  base: './',
  publicDir: false,
  logLevel: 'warn',
  plugins: [classicScript],
  build: {
    outDir: '../../../dist/web',
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: false,
    cssCodeSplit: false,
    reportCompressedSize: true,
    // the built-in scenario files are 2.95 MB of text (115 KB gzipped): README, "The visualizer", Size
    chunkSizeWarningLimit: 4096,
    rolldownOptions: { output: { format: 'iife', codeSplitting: false } },
  },
});
