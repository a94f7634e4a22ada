/**
 * The status view: one small HTTP server on loopback that serves a replica's (or a pair's)
 * status as JSON, the client that `understudy status` uses, and the text a person reads.
 */
import * as http from 'node:http';
import type { FailoverReport } from '../replication/backup.js';
import type { ReplicaStatus } from '../replication/replica.js';

/** What a replica process reports: the protocol's status and the process's own figures. */
export type ReplicaProcessStatus = ReplicaStatus & {
  logBytesPerSecond: number;
  pid: number;
  uptimeMs: number;
  /** Console output not yet taken by its reader; past consoleBacklogMaxBytes the guest waits. */
  consoleBacklogBytes: number;
};

/** A replica's latest report, as `pair` keeps it. */
export type ReplicaView = ReplicaProcessStatus & { exited: boolean; exitCode?: number | null };

/**
 * What `pair` reports: whether the VM is protected (and why not), the live replica and its
 * backup (their latest reports), and the last failover.
 */
export interface PairStatus {
  protected: boolean;
  reason?: string;
  primary: ReplicaView | undefined;
  /** The first backup (the only one with t = 1). */
  backup: ReplicaView | undefined;
  /** Every backup, oldest first: following or joining (null: no report yet). */
  backups?: (ReplicaView | undefined)[];
  failover: FailoverReport | undefined;
  failovers: number;
  /** Milliseconds since the last failover was reported, if there was one. */
  sinceFailoverMs?: number | undefined;
}

/** How long `understudy status` waits for an answer. */
const statusRequestTimeoutMs = 2000;

/** Control actions on the status port (`understudy status --port N ACTION`). */
export const controlActions = ['test-failover', 'restart-backup', 'stop'] as const;
export type ControlAction = (typeof controlActions)[number];

/** What a control action did, or why it did nothing. */
export interface ControlAnswer {
  readonly ok: boolean;
  readonly message: string;
}

/**
 * Serves `snapshot()` as JSON at /status (and /) on 127.0.0.1:`port`, and, when `control` is
 * given, the control actions as POST /control/ACTION. A field that is undefined shows as null,
 * so that the view still names it.
 */
export function serveStatus(port: number, snapshot: () => unknown, log: (line: string) => void, control?: (action: ControlAction) => ControlAnswer): http.Server {
  const server = http.createServer((request, response) => {
    const action = /^\/control\/([a-z-]+)$/.exec(request.url ?? '')?.[1];
    if (action !== undefined) {
      const known = (controlActions as readonly string[]).includes(action);
      const answer: ControlAnswer =
        request.method !== 'POST' ? { ok: false, message: 'control actions are POSTed' }
        : control === undefined ? { ok: false, message: 'this process takes no control actions (pair does)' }
        : !known ? { ok: false, message: `no action "${action}" (${controlActions.join(', ')})` }
        : control(action as ControlAction);
      response.writeHead(answer.ok ? 200 : 409, { 'content-type': 'application/json' }).end(JSON.stringify(answer) + '\n');
      return;
    }
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

/** POSTs a control action to 127.0.0.1:`port`; resolves with the answer. */
export function postControl(port: number, action: ControlAction): Promise<ControlAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, path: `/control/${action}`, method: 'POST', timeout: statusRequestTimeoutMs }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        try {
          resolve(JSON.parse(text) as ControlAnswer);
        } catch {
          reject(new Error(`127.0.0.1:${port} did not answer with a control answer (is it an understudy status port?)`));
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
    request.end();
  });
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
        `lag ${r.lagEpochs ?? '?'} epochs (${r.lagMs ?? '?'} ms), log ${rate}, outputs waiting ${r.outputsWaiting ?? '?'}, generation ${r.generation ?? '?'}${r.exited === true ? ')' : ''}`,
    );
    if (typeof r.slowedMs === 'number' && r.slowedMs > 0) {
      lines.push(`         slowed while the backup catches up: the guest pauses ${r.slowedMs} ms after each epoch`);
    }
    if (r.joining !== undefined && r.joining !== null) {
      lines.push(`         a backup is joining: live copy round ${r.joining.round}, ${r.joining.pagesSent} pages (${(r.joining.bytesSent / 1048576).toFixed(1)} MiB) sent in ${r.joining.ms} ms`);
    }
    if (r.divergence !== undefined && r.divergence !== null) {
      lines.push(`         NOT PROTECTED: divergence at epoch ${r.divergence.epoch}: ${r.divergence.reason}`);
    }
    if (r.lastFailover !== undefined && r.lastFailover !== null) {
      lines.push(`         last failover: live ${Math.round(r.lastFailover.tookMs)} ms after the primary was declared failed (it had been silent ${Math.round(r.lastFailover.detectionMs)} ms)`);
    }
  };
  const pair = status as Partial<PairStatus>;
  if (typeof status === 'object' && status !== null && ('primary' in status || 'backup' in status)) {
    if (typeof pair.protected === 'boolean') lines.push(pair.protected ? 'Protected' : `Not protected: ${pair.reason ?? 'unknown'}`);
    replica('primary', pair.primary);
    if (Array.isArray(pair.backups) && pair.backups.length > 1) pair.backups.forEach((backup, index) => replica(`backup ${index + 1}`, backup));
    else replica('backup', pair.backup);
    const failover = pair.failover;
    lines.push(
      failover === undefined || failover === null
        ? 'no failover so far'
        : `failover: ${failover.reason}; the backup was live ${Math.round(failover.liveAtMs - failover.detectedAtMs)} ms later, from epoch ${failover.epoch} ` +
            `(${failover.pendingRequests} disk request(s) settled, ${failover.consoleBytesRepeated} console byte(s) repeated)` +
            (typeof pair.sinceFailoverMs === 'number' ? `, ${formatDuration(pair.sinceFailoverMs)} ago` : '') +
            (typeof pair.failovers === 'number' && pair.failovers > 1 ? `; ${pair.failovers} failovers in all` : ''),
    );
  } else {
    replica('replica', status);
  }
  return `${lines.join('\n')}\n`;
}

/** A duration for people: 850 ms, 12.3 s, 4 min 05 s, 2 h 03 min. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.floor(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, '0')} s`;
  return `${Math.floor(seconds / 3600)} h ${String(Math.floor(seconds / 60) % 60).padStart(2, '0')} min`;
}
