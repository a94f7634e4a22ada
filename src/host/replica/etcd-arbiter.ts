/**
 * The arbiter on etcd, for deployments across hosts without a shared filesystem
 * (`--arbiter etcd://HOST:PORT[,HOST:PORT...]/PREFIX`): a compare-and-swap on the cluster's
 * generation through etcd's v3 API (its JSON gateway; no client library). Generation g can be
 * won once, by the replica whose swap of g-1 to g succeeds; the loser halts before any output
 * of its own (the protocol's output lease has already fenced an old primary cut off from its
 * backup). Consulted only on the failure path (and once by a primary at start).
 *
 * An etcd that does not answer is not a "yes": after trying every endpoint until the deadline,
 * the replica does not go live (safety before liveness, as a VMware FT secondary that cannot
 * reach its shared storage).
 */
import * as os from 'node:os';
import { SyncHttpClient } from '../sync-http.js';
import type { Arbiter } from './arbiter.js';

/** How long one attempt at the swap may take, all endpoints together. */
const swapDeadlineMs = 5000;

/** The etcd endpoints and key prefix of an `etcd://` arbiter address. */
export interface EtcdAddress {
  readonly endpoints: readonly string[];
  readonly prefix: string;
}

/** Parses `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`; throws a RangeError saying what is wrong. */
export function parseEtcdAddress(text: string): EtcdAddress {
  const match = /^etcd:\/\/([^/]+)(\/.*)?$/.exec(text);
  if (match === null) throw new RangeError(`"${text}" is not etcd://HOST:PORT[,HOST:PORT...]/PREFIX`);
  const endpoints = match[1]!.split(',').map((hostPort) => {
    if (!/^[A-Za-z0-9.\-[\]:]+:\d+$/.test(hostPort)) throw new RangeError(`"${hostPort}" in ${text} is not HOST:PORT`);
    return `http://${hostPort}`;
  });
  const prefix = (match[2] ?? '/understudy').replace(/\/+$/, '') || '/understudy';
  return { endpoints, prefix };
}

const base64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

export class EtcdArbiter implements Arbiter {
  private readonly http = new SyncHttpClient();

  constructor(
    private readonly address: EtcdAddress,
    private readonly log: (line: string) => void = () => {},
  ) {}

  tryGoLive(clusterId: string, generation: number, replica: string): boolean {
    const key = `${this.address.prefix}/clusters/${clusterId}/generation`;
    const owner = `${this.address.prefix}/clusters/${clusterId}/live`;
    const compare =
      generation === 1
        ? [{ key: base64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }]
        : [{ key: base64(key), target: 'VALUE', result: 'EQUAL', value: base64(String(generation - 1)) }];
    const body = JSON.stringify({
      compare,
      success: [
        { request_put: { key: base64(key), value: base64(String(generation)) } },
        { request_put: { key: base64(owner), value: base64(`generation ${generation}: ${replica}, pid ${process.pid} on ${os.hostname()}`) } },
      ],
    });
    const deadline = Date.now() + swapDeadlineMs;
    const failures: string[] = [];
    for (const endpoint of this.address.endpoints) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const response = this.http.post(`${endpoint}/v3/kv/txn`, body, left);
      if (response.status === 200) {
        try {
          // etcd leaves `succeeded` out when the comparison failed.
          return (JSON.parse(response.text) as { succeeded?: boolean }).succeeded === true;
        } catch {
          failures.push(`${endpoint}: an answer that is not etcd's`);
          continue;
        }
      }
      failures.push(`${endpoint}: ${response.status === -1 ? response.text : `HTTP ${response.status}`}`);
    }
    this.log(`the etcd arbiter did not answer (${failures.join('; ')}): not going live for generation ${generation}`);
    return false;
  }

  close(): void {
    this.http.close();
  }
}
