/**
 * Drives a guest's console through a real `understudy` process: waits for text, types lines,
 * runs shell commands between prompts. For the Linux and pair tests.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cliPath } from '../helpers.js';

export const shellPrompt = 'understudy$ ';

export class ConsoleSession {
  readonly process: ChildProcess;
  private output = '';
  private errors = '';
  private readonly exited: Promise<number | null>;
  private waiters: (() => void)[] = [];

  /**
   * Starts `understudy ARGS`. With `terminal`, it runs on a real pseudo-terminal (util-linux's
   * `script`), as when a person types at it: raw mode, Ctrl-A commands, and its stderr on the
   * same terminal as its console.
   */
  constructor(args: string[], options: { cwd?: string; terminal?: boolean } = {}) {
    const cwd = options.cwd === undefined ? {} : { cwd: options.cwd };
    const command = [process.execPath, cliPath, ...args];
    this.process = options.terminal === true
      ? spawn('script', ['-qfec', command.map(shellQuote).join(' '), '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], ...cwd })
      : spawn(command[0]!, command.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], ...cwd });
    this.process.stdout!.setEncoding('latin1');
    this.process.stderr!.setEncoding('utf8');
    this.process.stdout!.on('data', (chunk: string) => this.received(chunk));
    this.process.stderr!.on('data', (chunk: string) => {
      this.errors += chunk;
      this.wake();
    });
    this.exited = new Promise((resolve) => this.process.on('exit', (code) => {
      this.wake();
      resolve(code);
    }));
  }

  private received(chunk: string): void {
    this.output += chunk;
    this.wake();
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  get text(): string {
    return this.output;
  }

  get stderr(): string {
    return this.errors;
  }

  /** Waits until the console output after `from` matches; returns the index just past the match. */
  waitFor(pattern: string | RegExp, timeoutMs: number, from = 0): Promise<number> {
    return this.waitIn(() => this.output, pattern, timeoutMs, from);
  }

  /** The same on the process's stderr (its log, when it is not on a terminal). */
  waitForLog(pattern: string | RegExp, timeoutMs: number, from = 0): Promise<number> {
    return this.waitIn(() => this.errors, pattern, timeoutMs, from);
  }

  private async waitIn(stream: () => string, pattern: string | RegExp, timeoutMs: number, from: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rest = stream().slice(from);
      const index = typeof pattern === 'string' ? rest.indexOf(pattern) : rest.search(pattern);
      if (index >= 0) {
        const length = typeof pattern === 'string' ? pattern.length : (rest.match(pattern)?.[0].length ?? 0);
        return from + index + length;
      }
      if (this.process.exitCode !== null) throw new Error(`the process exited (${this.process.exitCode}) before ${String(pattern)} appeared:\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${String(pattern)}:\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  type(text: string): void {
    this.process.stdin!.write(text);
  }

  /** Runs one shell command: types it after the prompt, returns what it printed before the next prompt. */
  async command(line: string, timeoutMs = 30_000): Promise<string> {
    const start = this.output.length;
    this.type(`${line}\n`);
    const end = await this.waitFor(shellPrompt, timeoutMs, start);
    const transcript = this.output.slice(start, end - shellPrompt.length);
    // The terminal echoes the typed line first.
    const echoed = transcript.indexOf('\n');
    return echoed >= 0 ? transcript.slice(echoed + 1).replace(/\r/g, '') : transcript;
  }

  async exit(timeoutMs: number): Promise<number | null> {
    const timer = setTimeout(() => this.process.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  kill(): void {
    this.process.kill('SIGKILL');
  }

  tail(characters = 2000): string {
    return `--- console (last ${characters}) ---\n${this.output.slice(-characters)}\n--- stderr ---\n${this.errors.slice(-characters)}`;
  }
}

/**
 * Job control: Ctrl-C interrupts the foreground command and the shell carries on. The command
 * says when it runs (after the shell made it the terminal's foreground process group), and
 * only then does the Ctrl-C go.
 */
export async function assertCtrlCInterrupts(session: ConsoleSession): Promise<void> {
  const sleeping = session.text.length;
  session.type("sh -c 'echo sleeping; exec sleep 600'\n");
  await session.waitFor(/\nsleeping\r?\n/, 30_000, sleeping);
  session.type('\x03');
  await session.waitFor(shellPrompt, 30_000, sleeping);
  assert.equal((await session.command('echo $?')).trim(), '130', 'the sleep died of SIGINT');
}

function shellQuote(word: string): string {
  return `'${word.replace(/'/g, "'\\''")}'`;
}
