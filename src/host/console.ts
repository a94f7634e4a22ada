/**
 * The guest's console on the host terminal: raw mode on a TTY (every key goes to the guest),
 * plain pipes otherwise. On a TTY, Ctrl-A x quits and Ctrl-A Ctrl-A sends a Ctrl-A, as in QEMU;
 * other Ctrl-A commands go to whoever registered for them (`pair`: Ctrl-A k kills the primary).
 */

const ctrlA = 0x01;

export interface ConsolePort {
  write(bytes: Uint8Array): void;
  /** Takes up to `max` bytes of pending input. */
  takeInput(max: number): Uint8Array;
  readonly hasInput: boolean;
  /** No more input will ever come (stdin closed). */
  readonly inputEnded: boolean;
  /** The user asked to quit (Ctrl-A x), or went away (the output was closed). */
  readonly quitRequested: boolean;
  /** Resolves when input arrives or ends (or at once if there is some). */
  inputReady(): Promise<void>;
  /** The output's reader went away (EPIPE): what is written goes nowhere. */
  readonly outputClosed: boolean;
  /** Bytes written but not yet handed to the OS (a slow reader makes them pile up). */
  readonly outputBacklogBytes: number;
  /** Resolves when everything written has been handed to the OS (or the output is gone). */
  drain(): Promise<void>;
  close(): void;
}

/**
 * A console's output stream: counts the bytes waiting for a slow reader, and notices a reader
 * that goes away (EPIPE: `understudy run ... | head`), after which writes go nowhere instead
 * of killing the process with an unhandled error.
 */
export class ConsoleOutput {
  private gone = false;
  private drainers: (() => void)[] = [];
  private readonly onError = (): void => {
    if (this.gone) return;
    this.gone = true;
    for (const resolve of this.drainers.splice(0)) resolve();
    this.onClosed();
  };

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly onClosed: () => void,
  ) {
    stream.on('error', this.onError);
  }

  /** The reader went away. */
  get closed(): boolean {
    return this.gone;
  }

  get backlogBytes(): number {
    return this.gone ? 0 : this.stream.writableLength;
  }

  write(bytes: Uint8Array): void {
    if (!this.gone) this.stream.write(bytes);
  }

  /** Resolves when everything written has been handed to the OS, or the reader is gone. */
  drain(): Promise<void> {
    return new Promise((resolve) => {
      if (this.gone || this.stream.writableLength === 0) {
        resolve();
        return;
      }
      this.drainers.push(resolve);
      this.stream.write('', () => resolve());
    });
  }

  /** Stops watching; later writes (a final message) still must not crash on a closed output. */
  close(): void {
    this.stream.off('error', this.onError);
    this.stream.on('error', () => {});
  }
}

export class TerminalConsole implements ConsolePort {
  private pending: number[] = [];
  private ended = false;
  private quit = false;
  private escape = false;
  private waiters: (() => void)[] = [];
  private readonly raw: boolean;
  private readonly onData = (chunk: Buffer): void => this.received(chunk);
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake();
  };

  /** Ctrl-A commands besides x: key -> action. */
  readonly escapeCommands = new Map<string, () => void>();

  private readonly output: ConsoleOutput;

  constructor(
    private readonly input: NodeJS.ReadStream = process.stdin,
    output: NodeJS.WriteStream = process.stdout,
  ) {
    this.raw = input.isTTY === true;
    if (this.raw) input.setRawMode(true);
    input.on('data', this.onData);
    input.on('end', this.onEnd);
    input.on('error', this.onEnd);
    input.resume();
    // Nobody can see a console whose reader went away: the run ends, quietly.
    this.output = new ConsoleOutput(output, () => {
      this.quit = true;
      this.wake();
    });
  }

  get outputClosed(): boolean {
    return this.output.closed;
  }

  get outputBacklogBytes(): number {
    return this.output.backlogBytes;
  }

  private received(chunk: Buffer): void {
    for (const byte of chunk) {
      if (this.raw && this.escape) {
        this.escape = false;
        if (byte === 0x78 /* x */ || byte === 0x58) {
          this.quit = true;
          continue;
        }
        if (byte === ctrlA) {
          this.pending.push(ctrlA);
          continue;
        }
        const command = this.escapeCommands.get(String.fromCharCode(byte).toLowerCase());
        if (command !== undefined) {
          command();
          continue;
        }
      }
      if (this.raw && byte === ctrlA) {
        this.escape = true;
        continue;
      }
      this.pending.push(byte);
    }
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  write(bytes: Uint8Array): void {
    this.output.write(bytes);
  }

  takeInput(max: number): Uint8Array {
    return Uint8Array.from(this.pending.splice(0, Math.max(0, max)));
  }

  get hasInput(): boolean {
    return this.pending.length > 0;
  }

  get inputEnded(): boolean {
    return this.ended && this.pending.length === 0;
  }

  get quitRequested(): boolean {
    return this.quit;
  }

  inputReady(): Promise<void> {
    if (this.pending.length > 0 || this.ended || this.quit) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  drain(): Promise<void> {
    return this.output.drain();
  }

  close(): void {
    this.output.close();
    this.input.off('data', this.onData);
    this.input.off('end', this.onEnd);
    this.input.off('error', this.onEnd);
    if (this.raw) this.input.setRawMode(false);
    this.input.pause();
    this.wake();
  }
}

/** A console in memory: collects output, serves scripted input. For tests and embedding. */
export class BufferConsole implements ConsolePort {
  private readonly chunks: Uint8Array[] = [];
  private pending: number[];
  private ended: boolean;

  constructor(input: string | Uint8Array = '', options: { inputEnded?: boolean } = {}) {
    this.pending = Array.from(typeof input === 'string' ? new TextEncoder().encode(input) : input);
    this.ended = options.inputEnded ?? true;
  }

  write(bytes: Uint8Array): void {
    this.chunks.push(bytes.slice());
  }

  /** Adds input as if typed. */
  type(text: string): void {
    for (const byte of new TextEncoder().encode(text)) this.pending.push(byte);
  }

  takeInput(max: number): Uint8Array {
    return Uint8Array.from(this.pending.splice(0, Math.max(0, max)));
  }

  get hasInput(): boolean {
    return this.pending.length > 0;
  }

  get inputEnded(): boolean {
    return this.ended && this.pending.length === 0;
  }

  readonly quitRequested = false;
  readonly outputClosed = false;
  readonly outputBacklogBytes = 0;

  inputReady(): Promise<void> {
    return Promise.resolve();
  }

  drain(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {}

  get outputBytes(): Uint8Array {
    return Buffer.concat(this.chunks);
  }

  get text(): string {
    return new TextDecoder().decode(this.outputBytes);
  }
}
