/**
 * The cluster's keys: a certificate authority per cluster and a certificate per replica,
 * made with Debian's openssl, for the replication channel's mutual TLS (transport.ts). Any
 * certificate the cluster CA signed is a member of the cluster: there is no hostname check,
 * since replicas change roles and hosts; whoever holds the CA key decides who may join.
 *
 * Layout made by `understudy keys init DIR --replicas a,b`:
 *   DIR/ca.crt, DIR/ca.key          the cluster CA (keep ca.key off the replicas' hosts)
 *   DIR/a/ca.crt, replica.crt, replica.key   what host a needs: `--tls DIR/a`
 */
import { spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** How long the CA and the replica certificates are valid. */
const caValidityDays = 3650;
const replicaValidityDays = 825;
/** A replica's name: a file-name-safe word. */
const replicaNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Keys that are missing, unreadable, of another cluster, or not valid now. */
export class KeyError extends Error {
  override readonly name = 'KeyError';
}

/** What one replica presents and trusts. */
export interface TlsIdentity {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The certificate's subject, for logs. */
  readonly subject: string;
}

function openssl(args: readonly string[], cwd: string): void {
  const result = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (result.error !== undefined) throw new KeyError(`cannot run openssl (install Debian's openssl): ${result.error.message}`);
  if (result.status !== 0) throw new KeyError(`openssl ${args[0]} failed: ${result.stderr.trim().split('\n').slice(-1)[0] ?? ''}`);
}

/**
 * Makes a cluster CA in `directory` (unless one is there) and a certificate for each of
 * `names` in `directory/<name>/`. Returns the replicas' directories.
 */
export function initClusterKeys(directory: string, names: readonly string[]): string[] {
  for (const name of names) if (!replicaNamePattern.test(name)) throw new KeyError(`"${name}" is not a replica name (letters, digits, ".", "_", "-")`);
  if (new Set(names).size !== names.length) throw new KeyError('replica names must differ');
  fs.mkdirSync(directory, { recursive: true, mode: 0o700 });
  const caCert = path.join(directory, 'ca.crt');
  const caKey = path.join(directory, 'ca.key');
  if (!fs.existsSync(caCert) || !fs.existsSync(caKey)) {
    openssl(
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
        '-subj', `/CN=understudy cluster CA ${Date.now().toString(36)}`, '-days', String(caValidityDays),
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
      directory,
    );
    fs.chmodSync(caKey, 0o600);
  }
  const extensions = path.join(directory, 'replica.ext');
  fs.writeFileSync(extensions, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n');
  const made: string[] = [];
  try {
    for (const name of names) {
      const replica = path.join(directory, name);
      if (fs.existsSync(path.join(replica, 'replica.crt'))) throw new KeyError(`${replica} already has a certificate`);
      fs.mkdirSync(replica, { recursive: true, mode: 0o700 });
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}/replica.key`, '-out', `${name}/replica.csr`, '-subj', `/CN=${name}`], directory);
      openssl(
        ['x509', '-req', '-in', `${name}/replica.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}/replica.crt`,
          '-days', String(replicaValidityDays), '-extfile', 'replica.ext'],
        directory,
      );
      fs.rmSync(path.join(replica, 'replica.csr'));
      fs.chmodSync(path.join(replica, 'replica.key'), 0o600);
      fs.copyFileSync(caCert, path.join(replica, 'ca.crt'));
      made.push(replica);
    }
  } finally {
    fs.rmSync(extensions, { force: true });
  }
  return made;
}

function readKeyFile(directory: string, file: string): Buffer {
  const full = path.join(directory, file);
  try {
    return fs.readFileSync(full);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new KeyError(`--tls ${directory}: ${code === 'ENOENT' ? `no ${file} there (make keys with: understudy keys init DIR --replicas NAME,...)` : `cannot read ${file}: ${code ?? String(error)}`}`);
  }
}

/**
 * Reads and checks a replica's keys (`--tls DIR`): the certificate must be signed by the CA,
 * valid now, and match its key, so that a wrong directory fails at start-up, not at a join.
 */
export function loadTlsIdentity(directory: string, nowMs = Date.now()): TlsIdentity {
  const ca = readKeyFile(directory, 'ca.crt');
  const cert = readKeyFile(directory, 'replica.crt');
  const key = readKeyFile(directory, 'replica.key');
  let caCert: X509Certificate;
  let replicaCert: X509Certificate;
  try {
    caCert = new X509Certificate(ca);
    replicaCert = new X509Certificate(cert);
  } catch (error) {
    throw new KeyError(`--tls ${directory}: not a certificate: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!replicaCert.checkIssued(caCert) || !replicaCert.verify(caCert.publicKey)) throw new KeyError(`--tls ${directory}: replica.crt is not signed by ca.crt`);
  for (const [name, certificate] of [['ca.crt', caCert], ['replica.crt', replicaCert]] as const) {
    if (nowMs < Date.parse(certificate.validFrom) || nowMs > Date.parse(certificate.validTo)) {
      throw new KeyError(`--tls ${directory}: ${name} is valid from ${certificate.validFrom} to ${certificate.validTo}, not now`);
    }
  }
  try {
    if (!replicaCert.checkPrivateKey(createPrivateKey(key))) throw new KeyError(`--tls ${directory}: replica.key is not the key of replica.crt`);
  } catch (error) {
    if (error instanceof KeyError) throw error;
    throw new KeyError(`--tls ${directory}: replica.key is not a private key: ${error instanceof Error ? error.message : String(error)}`);
  }
  return { ca, cert, key, subject: replicaCert.subject.replace(/\n/g, ', ') };
}

