/**
 * The status view: one small HTTP server on loopback that serves a replica's (or a pair's)
 * status as JSON, the client that `understudy status` uses, and the text a person reads.
 */
import * as http from 'node:http';
import type { FailoverReport } from '../replication/backup.js';
import type { ReplicaStatus } from '../replication/replica.js';

/** What a replica process reports: the protocol's status and the process's own figures. */
export type ReplicaProcessStatus = ReplicaStatus & { logBytesPerSecond: number; pid: number; uptimeMs: number };

/** What `pair` reports: each replica's latest status, and the failover if there was one. */
export interface PairStatus {
  primary: (ReplicaProcessStatus & { exited: boolean; exitCode?: number | null }) | undefined;
  backup: (ReplicaProcessStatus & { exited: boolean; exitCode?: number | null }) | undefined;
  failover: FailoverReport | undefined;
}

/** How long `understudy status` waits for an answer. */
const statusRequestTimeoutMs = 2000;

/**
 * Serves `snapshot()` as JSON at /status (and /) on 127.0.0.1:`port`. A field that is
 * undefined shows as null, so that the view still names it.
 */
export function serveStatus(port: number, snapshot: () => unknown, log: (line: string) => void): http.Server {
  const server = http.createServer((request, response) => {
    if (request.url !== '/status' && request.url !== '/') {
      response.writeHead(404).end('not found\n');
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(snapshot(), (_key, value: unknown) => (value === undefined ? null : value), 2) + '\n');
  });
  server.on('error', (error) => log(`status endpoint: ${error.message}`));
  server.listen(port, '127.0.0.1');
  return server;
}

/** The status JSON at 127.0.0.1:`port`, as text; rejects with a one-line reason. */
export function fetchStatus(port: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/status', timeout: statusRequestTimeoutMs }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve(text));
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

/** The status view, for people: one line per replica, then the last failover. */
export function formatStatus(status: unknown): string {
  const lines: string[] = [];
  const replica = (name: string, value: unknown): void => {
    if (typeof value !== 'object' || value === null) {
      lines.push(`${name}: no report yet`);
      return;
    }
    const r = value as Partial<ReplicaProcessStatus> & { exited?: boolean };
    const rate = r.logBytesPerSecond === undefined ? '?' : `${(r.logBytesPerSecond / 1024).toFixed(1)} KiB/s`;
    lines.push(
      `${name.padEnd(8)} pid ${r.pid ?? '?'}: ${r.exited === true ? 'exited (last report: ' : ''}${r.role ?? '?'}, epoch ${r.epoch ?? '?'}, ` +
        `lag ${r.lagEpochs ?? '?'} epochs, log ${rate}, outputs waiting ${r.outputsWaiting ?? '?'}, generation ${r.generation ?? '?'}${r.exited === true ? ')' : ''}`,
    );
    if (r.divergence !== undefined && r.divergence !== null) {
      lines.push(`         NOT PROTECTED: divergence at epoch ${r.divergence.epoch}: ${r.divergence.reason}`);
    }
    if (r.lastFailover !== undefined && r.lastFailover !== null) {
      lines.push(`         last failover: live ${Math.round(r.lastFailover.tookMs)} ms after the primary was declared failed (it had been silent ${Math.round(r.lastFailover.detectionMs)} ms)`);
    }
  };
  const pair = status as Partial<PairStatus>;
  if (typeof status === 'object' && status !== null && ('primary' in status || 'backup' in status)) {
    replica('primary', pair.primary);
    replica('backup', pair.backup);
    const failover = pair.failover;
    lines.push(
      failover === undefined || failover === null
        ? 'no failover so far'
        : `failover: ${failover.reason}; the backup was live ${Math.round(failover.liveAtMs - failover.detectedAtMs)} ms later, from epoch ${failover.epoch} ` +
            `(${failover.pendingRequests} disk request(s) settled, ${failover.consoleBytesRepeated} console byte(s) repeated)`,
    );
  } else {
    replica('replica', status);
  }
  return `${lines.join('\n')}\n`;
}
