import readline from "node:readline";

/**
 * Line prompts on stderr. Works with a terminal (secrets are not echoed) and
 * with piped stdin (lines are queued, so answers written ahead are not lost).
 */
let rl: readline.Interface | null = null;
const queue: string[] = [];
const waiters: ((line: string | null) => void)[] = [];
let ended = false;
let muted = false;

function open(): void {
  if (rl) return;
  rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: process.stdin.isTTY === true });
  const internal = rl as unknown as { _writeToOutput: (s: string) => void; output: NodeJS.WritableStream };
  const write = internal._writeToOutput?.bind(rl);
  if (write) internal._writeToOutput = (s: string) => (muted && !s.includes("\n") ? undefined : write(s));
  rl.on("line", (line) => (waiters.length ? waiters.shift()!(line) : queue.push(line)));
  rl.on("close", () => {
    ended = true;
    while (waiters.length) waiters.shift()!(null);
  });
}

export async function ask(question: string, opts: { secret?: boolean } = {}): Promise<string> {
  open();
  process.stderr.write(question);
  muted = opts.secret === true && process.stdin.isTTY === true;
  const line = queue.length ? queue.shift()! : ended ? null : await new Promise<string | null>((r) => waiters.push(r));
  if (muted) process.stderr.write("\n");
  muted = false;
  if (line === null) throw new Error(`no answer to "${question.trim()}": standard input ended`);
  return line.replace(/\r$/, "");
}

export async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  return /^y(es)?$/i.test((await ask(`${question} [y/N]: `)).trim());
}

export function closePrompts(): void {
  rl?.close();
  rl = null;
}
