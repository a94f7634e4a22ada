/**
 * The arbiter on etcd, for deployments across hosts without a shared filesystem
 * (`--arbiter etcd://HOST:PORT[,HOST:PORT...]/PREFIX`): a compare-and-swap on the cluster's
 * generation through etcd's v3 API (its JSON gateway; no client library). The same transaction
 * writes the generation's record (who won it, the backups it kept) under
 * `PREFIX/clusters/<id>/generations/<g>`; a loser reads it. Generation g can be
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
import { decodeArbiterRecord, encodeArbiterRecord, type Arbiter } from './arbiter.js';
import type { ArbiterAnswer, ArbiterRecord } from '../../replication/replica.js';

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

  tryGoLive(clusterId: string, generation: number, replica: string, members: readonly string[]): ArbiterAnswer {
    const cluster = `${this.address.prefix}/clusters/${clusterId}`;
    const key = `${cluster}/generation`;
    const compare =
      generation === 1
        ? [{ key: base64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }]
        : [{ key: base64(key), target: 'VALUE', result: 'EQUAL', value: base64(String(generation - 1)) }];
    const body = JSON.stringify({
      compare,
      success: [
        { request_put: { key: base64(key), value: base64(String(generation)) } },
        { request_put: { key: base64(`${cluster}/live`), value: base64(`generation ${generation}: ${replica}, pid ${process.pid} on ${os.hostname()}`) } },
        { request_put: { key: base64(`${cluster}/generations/${generation}`), value: base64(encodeArbiterRecord({ replica, members }, process.pid, os.hostname())) } },
      ],
    });
    const answer = this.post('/v3/kv/txn', body, `not going live for generation ${generation}`);
    // etcd leaves `succeeded` out when the comparison failed.
    if (answer !== undefined && (answer as { succeeded?: boolean }).succeeded === true) return { won: true };
    return { won: false, holder: answer === undefined ? undefined : this.record(cluster, generation) };
  }

  holder(clusterId: string, generation: number): ArbiterRecord | undefined {
    return this.record(`${this.address.prefix}/clusters/${clusterId}`, generation);
  }

  /** Generation `generation`'s record, if it can be read. */
  private record(cluster: string, generation: number): ArbiterRecord | undefined {
    const answer = this.post('/v3/kv/range', JSON.stringify({ key: base64(`${cluster}/generations/${generation}`) }), `the record of generation ${generation} is unknown`);
    const value = (answer as { kvs?: { value?: string }[] } | undefined)?.kvs?.[0]?.value;
    return value === undefined ? undefined : decodeArbiterRecord(Buffer.from(value, 'base64').toString('utf8'));
  }

  /** POSTs to each endpoint in turn until one answers (within the deadline); undefined, said in the log, if none does. */
  private post(path: string, body: string, consequence: string): unknown {
    const deadline = Date.now() + swapDeadlineMs;
    const failures: string[] = [];
    for (const endpoint of this.address.endpoints) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const response = this.http.post(`${endpoint}${path}`, body, left);
      if (response.status === 200) {
        try {
          return JSON.parse(response.text) as unknown;
        } catch {
          failures.push(`${endpoint}: an answer that is not etcd's`);
          continue;
        }
      }
      failures.push(`${endpoint}: ${response.status === -1 ? response.text : `HTTP ${response.status}`}`);
    }
    this.log(`the etcd arbiter did not answer (${failures.join('; ')}): ${consequence}`);
    return undefined;
  }

  close(): void {
    this.http.close();
  }
}
