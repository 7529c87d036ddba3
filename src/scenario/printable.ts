/**
 * Text fit for one terminal line: control bytes (a binary file's, an escape sequence's) are shown
 * as \xNN, never sent to the terminal, and the length is bounded.
 */
export function printable(s: string, max = 160): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: these are what is being escaped
  const t = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return t.length > max ? `${t.slice(0, max)}...` : t;
}
