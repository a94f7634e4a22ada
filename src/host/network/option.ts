/**
 * `--net`, after QEMU's `-nic`: which back-end a NIC has, and its MAC address.
 *
 *   user[,mac=MAC][,hostfwd=tcp:[HOSTADDR]:HOSTPORT-[:]GUESTPORT]...   passt (user-mode networking)
 *   tap,ifname=NAME[,mac=MAC]                                           a TAP device (through tap-relay)
 *   stream,path=PATH[,mac=MAC]                                          a UNIX socket carrying frames
 *                                                                       as QEMU's -netdev stream does
 *
 * A forward without HOSTADDR binds to loopback only. NICs without `mac=` get QEMU's addresses:
 * 52:54:00:12:34:56 for the first, counting up.
 */
import { defaultMacAddress, formatMacAddress, parseMacAddress } from '../../machine/devices/virtio-net.js';

export interface PortForward {
  readonly protocol: 'tcp' | 'udp';
  readonly hostAddress: string;
  readonly hostPort: number;
  readonly guestPort: number;
}

export type NetBackendSpec =
  | { readonly kind: 'user'; readonly forwards: readonly PortForward[] }
  | { readonly kind: 'tap'; readonly ifname: string }
  | { readonly kind: 'stream'; readonly path: string };

export interface NetSpec {
  readonly mac: string;
  readonly backend: NetBackendSpec;
}

export class NetOptionError extends Error {
  override readonly name = 'NetOptionError';
}

/** The address a forward binds to when none is given. */
export const defaultForwardAddress = '127.0.0.1';
/** Linux's IFNAMSIZ less the terminating NUL. */
const interfaceNameBytesMax = 15;

/** The MAC address of the n-th NIC when none is given (QEMU counts the last byte up). */
export function defaultMac(index: number): string {
  const bytes = parseMacAddress(defaultMacAddress)!;
  bytes[5] = (bytes[5]! + index) & 0xff;
  return formatMacAddress(bytes);
}

export function parseNetSpec(text: string, index: number): NetSpec {
  const [kind, ...parts] = text.split(',');
  const fields: [string, string][] = parts.map((part) => {
    const at = part.indexOf('=');
    if (at <= 0) throw new NetOptionError(`--net ${text}: "${part}" is not NAME=VALUE`);
    return [part.slice(0, at), part.slice(at + 1)];
  });
  const allowed: Record<string, readonly string[]> = { user: ['mac', 'hostfwd'], tap: ['mac', 'ifname'], stream: ['mac', 'path'] };
  const names = allowed[kind ?? ''];
  if (names === undefined) throw new NetOptionError(`--net ${text}: the back-end must be user, tap or stream, not "${kind}"`);
  for (const [name] of fields) if (!names.includes(name)) throw new NetOptionError(`--net ${text}: ${kind} takes ${names.join(', ')}, not ${name}`);
  const one = (name: string): string | undefined => {
    const values = fields.filter(([field]) => field === name).map(([, value]) => value);
    if (values.length > 1) throw new NetOptionError(`--net ${text}: ${name} given twice`);
    return values[0];
  };
  const macText = one('mac') ?? defaultMac(index);
  const mac = parseMacAddress(macText);
  if (mac === undefined) throw new NetOptionError(`--net ${text}: mac=${macText} is not a unicast MAC address like ${defaultMacAddress}`);
  const spec = (backend: NetBackendSpec): NetSpec => ({ mac: formatMacAddress(mac), backend });
  switch (kind) {
    case 'user':
      return spec({ kind: 'user', forwards: fields.filter(([name]) => name === 'hostfwd').map(([, value]) => parseForward(value, text)) });
    case 'tap': {
      const ifname = one('ifname');
      if (ifname === undefined) throw new NetOptionError(`--net ${text}: tap needs ifname=NAME`);
      if (!/^[A-Za-z0-9_.-]+$/.test(ifname) || ifname.length > interfaceNameBytesMax) {
        throw new NetOptionError(`--net ${text}: "${ifname}" is not an interface name (letters, digits, _ . -; at most ${interfaceNameBytesMax})`);
      }
      return spec({ kind: 'tap', ifname });
    }
    default: {
      const path = one('path');
      if (path === undefined || path === '') throw new NetOptionError(`--net ${text}: stream needs path=SOCKET`);
      return spec({ kind: 'stream', path });
    }
  }
}

/** QEMU's hostfwd: `tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`; the guest address, if given, must be empty. */
function parseForward(value: string, text: string): PortForward {
  const match = /^(tcp|udp)?:([0-9.]*):(\d+)-:?(\d+)$/.exec(value);
  if (match === null) throw new NetOptionError(`--net ${text}: hostfwd=${value} is not tcp:[HOSTADDR]:HOSTPORT-:GUESTPORT`);
  const port = (digits: string): number => {
    const number = Number(digits);
    if (!Number.isInteger(number) || number < 1 || number > 65535) throw new NetOptionError(`--net ${text}: port ${digits} is not 1..65535`);
    return number;
  };
  const hostAddress = match[2] === '' ? defaultForwardAddress : match[2]!;
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(hostAddress) || hostAddress.split('.').some((byte) => Number(byte) > 255)) {
    throw new NetOptionError(`--net ${text}: ${hostAddress} is not an IPv4 address`);
  }
  return { protocol: match[1] === 'udp' ? 'udp' : 'tcp', hostAddress, hostPort: port(match[3]!), guestPort: port(match[4]!) };
}

/** The option text for `spec` (how `pair` passes its NICs' stream sockets to its replicas). */
export function formatNetSpec(spec: NetSpec): string {
  const backend = spec.backend;
  switch (backend.kind) {
    case 'user':
      return ['user', `mac=${spec.mac}`, ...backend.forwards.map((f) => `hostfwd=${f.protocol}:${f.hostAddress}:${f.hostPort}-:${f.guestPort}`)].join(',');
    case 'tap':
      return `tap,ifname=${backend.ifname},mac=${spec.mac}`;
    case 'stream':
      return `stream,path=${backend.path},mac=${spec.mac}`;
  }
}
