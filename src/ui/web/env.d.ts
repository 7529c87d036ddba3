/** What Vite adds to import.meta that this page uses (vite/client without the rest). */
interface ImportMeta {
  glob(pattern: string | string[], options: { eager: true; query: '?raw'; import: 'default' }): Record<string, string>;
}
