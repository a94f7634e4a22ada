/**
 * A real etcd (Debian's etcd-server) on loopback for the arbiter tests: a single member in a
 * scratch directory, on free ports, stopped with its directory at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, scratchDirectory } from './replica-processes.js';

export class EtcdServer {
  private constructor(
    private readonly process: ChildProcess,
    private readonly directory: string,
    readonly clientUrl: string,
    private readonly log: () => string,
  ) {}

  /** Starts etcd and waits (polling its health, with a generous deadline) until it answers. */
  static async start(): Promise<EtcdServer> {
    const directory = scratchDirectory('etcd');
    const clientPort = await freePort();
    const peerPort = await freePort();
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const child = spawn('etcd', [
      '--name', 'test', '--data-dir', path.join(directory, 'data'),
      '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
      '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `test=${peerUrl}`,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (log = (log + chunk).slice(-4000)));
    const server = new EtcdServer(child, directory, clientUrl, () => log);
    const deadline = performance.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}):\n${log}`);
      try {
        const health = (await (await fetch(`${clientUrl}/health`)).json()) as { health?: string };
        if (health.health === 'true') return server;
      } catch {
        // not listening yet
      }
      if (performance.now() > deadline) throw new Error(`etcd did not become healthy:\n${log}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** `etcd://127.0.0.1:PORT/PREFIX`, as --arbiter takes it. */
  arbiterAddress(prefix: string): string {
    return `etcd://${this.clientUrl.slice('http://'.length)}/${prefix}`;
  }

  /** The value of `key`, or undefined. */
  async get(key: string): Promise<string | undefined> {
    const response = await fetch(`${this.clientUrl}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from(key).toString('base64') }) });
    const body = (await response.json()) as { kvs?: { value: string }[] };
    const value = body.kvs?.[0]?.value;
    return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
  }

  /** The keys under `prefix`. */
  async keys(prefix: string): Promise<string[]> {
    const start = Buffer.from(prefix);
    const end = Buffer.from(prefix);
    end[end.length - 1]!++;
    const response = await fetch(`${this.clientUrl}/v3/kv/range`, {
      method: 'POST',
      body: JSON.stringify({ key: start.toString('base64'), range_end: end.toString('base64'), keys_only: true }),
    });
    const body = (await response.json()) as { kvs?: { key: string }[] };
    return (body.kvs ?? []).map((kv) => Buffer.from(kv.key, 'base64').toString('utf8'));
  }

  get output(): string {
    return this.log();
  }

  async stop(): Promise<void> {
    if (this.process.exitCode === null) {
      const exited = new Promise((resolve) => this.process.once('exit', resolve));
      this.process.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(this.directory, { recursive: true, force: true });
  }
}
