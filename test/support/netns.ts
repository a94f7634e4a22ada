/**
 * Two virtual hosts for partition tests: network namespaces made for the test, joined by a
 * veth pair with link-local addresses, and cuts of that link (both ways with the link down,
 * one way with an nftables rule that drops what one side sends). Needs root, iproute2 and
 * nftables; everything is removed by `destroy`.
 */
import { spawnSync } from 'node:child_process';

export type Host = 'a' | 'b';
export type Cut = 'both ways' | 'a to b' | 'b to a';

/** The hosts' addresses: link-local, so that nothing could route them anywhere else. */
export const hostAddress: Record<Host, string> = { a: '169.254.77.1', b: '169.254.77.2' };

function run(command: string, args: readonly string[]): void {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error !== undefined || result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.error?.message ?? result.stderr.trim()}`);
}

/** Why the partition tests cannot run here, if they cannot. */
export function twoHostsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  for (const tool of ['ip', 'nft']) {
    if (spawnSync(tool, ['--version'], { encoding: 'utf8' }).error !== undefined) return `${tool} is not installed`;
  }
  return undefined;
}

let counter = 0;

export class TwoHosts {
  private readonly names: Record<Host, string>;
  private readonly link: Record<Host, string>;

  constructor() {
    const tag = `us${process.pid}n${counter++}`;
    this.names = { a: `${tag}a`, b: `${tag}b` };
    this.link = { a: `${tag}va`, b: `${tag}vb` };
    try {
      for (const host of ['a', 'b'] as const) run('ip', ['netns', 'add', this.names[host]]);
      run('ip', ['link', 'add', this.link.a, 'type', 'veth', 'peer', 'name', this.link.b]);
      for (const host of ['a', 'b'] as const) {
        const ns = this.names[host];
        run('ip', ['link', 'set', this.link[host], 'netns', ns]);
        run('ip', ['-n', ns, 'addr', 'add', `${hostAddress[host]}/24`, 'dev', this.link[host]]);
        run('ip', ['-n', ns, 'link', 'set', this.link[host], 'up']);
        run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      }
    } catch (error) {
      this.destroy();
      throw error;
    }
  }

  /** The command prefix that runs a program on `host`. */
  prefix(host: Host): string[] {
    return ['ip', 'netns', 'exec', this.names[host]];
  }

  /** Cuts the link: both ways (the link goes down), or what one host sends is dropped. */
  cut(how: Cut): void {
    if (how === 'both ways') {
      run('ip', ['-n', this.names.a, 'link', 'set', this.link.a, 'down']);
      return;
    }
    const sender: Host = how === 'a to b' ? 'a' : 'b';
    const ns = this.names[sender];
    run('ip', ['netns', 'exec', ns, 'nft', 'add', 'table', 'inet', 'partition']);
    run('ip', ['netns', 'exec', ns, 'nft', 'add', 'chain', 'inet', 'partition', 'out', '{ type filter hook output priority 0; }']);
    run('ip', ['netns', 'exec', ns, 'nft', 'add', 'rule', 'inet', 'partition', 'out', 'oifname', this.link[sender], 'drop']);
  }

  destroy(): void {
    for (const host of ['a', 'b'] as const) spawnSync('ip', ['netns', 'del', this.names[host]]);
  }
}
