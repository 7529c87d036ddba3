/**
 * How the guestmem command reports what went wrong: one line on stderr, `guestmem: ...` naming the
 * file, step, field or flag, exit status 2 for anything the user gave us (a flag, a file), never a
 * stack trace (GUESTMEM_DEBUG=1 adds it for an internal error, which exits 1).
 */
import type { Command } from 'commander';
import { KvmUnavailable } from '../backends/errors.js';
import { printable } from '../scenario/printable.js';
import { ScenarioError } from '../scenario/values.js';

/** An error in what the user gave us: printed as one line, exit status 2. */
export class UserError extends Error {
  override readonly name = 'UserError';
}

/** One line for the terminal: newlines folded, control bytes escaped, length bounded. */
export const oneLine = (msg: string): string => printable(msg.trim().replace(/\s*\n\s*/g, ' '), 600);

/**
 * commander's own errors (unknown option, bad choice, missing argument) as one line naming the
 * command, with its "Did you mean" folded in; no second "(run with --help ...)" line.
 */
export function oneLineErrors(cmd: Command, name = cmd.name()): void {
  cmd.configureOutput({ outputError: (s, write) => write(`${name}: ${oneLine(s.replace(/^error: /, ''))}\n`) });
  for (const sub of cmd.commands) oneLineErrors(sub, `${name} ${sub.name()}`);
}

/** Print an error that reached the top of the command; returns the exit status. */
export function reportError(e: unknown, write: (s: string) => void = (s) => process.stderr.write(s)): number {
  // KvmUnavailable: --backend kvm where this machine cannot run it, which the user can change
  if (e instanceof UserError || e instanceof ScenarioError || e instanceof KvmUnavailable) {
    write(`guestmem: ${oneLine(e.message)}\n`);
    return 2;
  }
  const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  write(`guestmem: internal error: ${oneLine(msg)}${process.env.GUESTMEM_DEBUG ? '' : ' (GUESTMEM_DEBUG=1 shows where)'}\n`);
  if (process.env.GUESTMEM_DEBUG && e instanceof Error && e.stack) write(`${e.stack}\n`);
  return 1;
}
