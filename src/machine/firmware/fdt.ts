/**
 * A flattened device tree (DTB) writer: Devicetree Specification v0.4, chapter 5
 * ("Flattened Devicetree (DTB) Format"), version 17.
 *
 * Build a tree of {@link FdtNode}s, then `encodeFdt` lays it out as header, memory
 * reservation block (empty), structure block and strings block, big-endian throughout.
 */

export type FdtValue =
  | { readonly kind: 'cells'; readonly cells: readonly number[] }
  | { readonly kind: 'string'; readonly strings: readonly string[] }
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'empty' };

export interface FdtNode {
  readonly name: string;
  readonly properties: [string, FdtValue][];
  readonly children: FdtNode[];
}

export const cells = (...values: number[]): FdtValue => ({ kind: 'cells', cells: values });
export const str = (...strings: string[]): FdtValue => ({ kind: 'string', strings });
export const empty: FdtValue = { kind: 'empty' };
/** A 64-bit quantity as two cells (high, low). */
export const u64Cells = (value: number): number[] => [Math.floor(value / 2 ** 32), value >>> 0];

export function node(name: string, properties: [string, FdtValue][] = [], children: FdtNode[] = []): FdtNode {
  return { name, properties, children };
}

const FdtToken = { BEGIN_NODE: 1, END_NODE: 2, PROP: 3, END: 9 } as const;
const fdtMagic = 0xd00dfeed;
const headerBytes = 40;
const fdtVersion = 17;
const lastCompatibleVersion = 16;

class Words {
  private readonly bytes: number[] = [];
  u32(value: number): void {
    this.bytes.push((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
  }
  raw(data: Uint8Array): void {
    for (const byte of data) this.bytes.push(byte);
    while (this.bytes.length % 4 !== 0) this.bytes.push(0);
  }
  get length(): number {
    return this.bytes.length;
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

function encodeValue(value: FdtValue): Uint8Array {
  switch (value.kind) {
    case 'empty':
      return new Uint8Array(0);
    case 'bytes':
      return value.bytes;
    case 'string':
      return new TextEncoder().encode(value.strings.map((s) => `${s}\0`).join(''));
    case 'cells': {
      const out = new Uint8Array(value.cells.length * 4);
      const view = new DataView(out.buffer);
      value.cells.forEach((cell, i) => view.setUint32(i * 4, cell >>> 0, false));
      return out;
    }
  }
}

/**
 * `valueOffsets`: for each value object that is a key, the encoder sets where its bytes start
 * in the blob (a value filled in later, such as a boot's seed).
 */
export function encodeFdt(root: FdtNode, options: { bootCpuId?: number; valueOffsets?: Map<FdtValue, number> } = {}): Uint8Array {
  const structure = new Words();
  const strings: number[] = [];
  const stringOffsets = new Map<string, number>();
  const nameOffset = (name: string): number => {
    let offset = stringOffsets.get(name);
    if (offset === undefined) {
      offset = strings.length;
      stringOffsets.set(name, offset);
      for (const byte of new TextEncoder().encode(name)) strings.push(byte);
      strings.push(0);
    }
    return offset;
  };
  const walk = (current: FdtNode): void => {
    structure.u32(FdtToken.BEGIN_NODE);
    structure.raw(new TextEncoder().encode(`${current.name}\0`));
    for (const [name, value] of current.properties) {
      const data = encodeValue(value);
      structure.u32(FdtToken.PROP);
      structure.u32(data.length);
      structure.u32(nameOffset(name));
      if (options.valueOffsets?.has(value) === true) options.valueOffsets.set(value, structure.length);
      structure.raw(data);
    }
    for (const child of current.children) walk(child);
    structure.u32(FdtToken.END_NODE);
  };
  walk(root);
  structure.u32(FdtToken.END);

  const reservationBytes = 16; // one terminating (0, 0) entry
  const offsetReservation = headerBytes;
  const offsetStructure = offsetReservation + reservationBytes;
  const structureBytes = structure.length;
  const offsetStrings = offsetStructure + structureBytes;
  const total = offsetStrings + strings.length;
  const out = new Uint8Array(Math.ceil(total / 8) * 8);
  const view = new DataView(out.buffer);
  const header = [fdtMagic, out.length, offsetStructure, offsetStrings, offsetReservation, fdtVersion, lastCompatibleVersion, options.bootCpuId ?? 0, strings.length, structureBytes];
  header.forEach((value, i) => view.setUint32(i * 4, value >>> 0, false));
  out.set(structure.finish(), offsetStructure);
  if (options.valueOffsets !== undefined) for (const [value, offset] of options.valueOffsets) options.valueOffsets.set(value, offsetStructure + offset);
  out.set(strings, offsetStrings);
  return out;
}

/** Reads a DTB back into nodes (for tests and `understudy dtb`); throws on malformed input. */
export function decodeFdt(blob: Uint8Array): FdtNode {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (blob.length < headerBytes || view.getUint32(0, false) !== fdtMagic) throw new Error('not a flattened device tree');
  const offsetStructure = view.getUint32(8, false);
  const offsetStrings = view.getUint32(12, false);
  let at = offsetStructure;
  const u32 = (): number => {
    const value = view.getUint32(at, false);
    at += 4;
    return value;
  };
  const cString = (start: number): string => {
    let end = start;
    while (blob[end] !== 0) end++;
    return new TextDecoder().decode(blob.subarray(start, end));
  };
  const stack: FdtNode[] = [];
  let root: FdtNode | undefined;
  for (;;) {
    const token = u32();
    if (token === FdtToken.BEGIN_NODE) {
      const name = cString(at);
      at += Math.ceil((name.length + 1) / 4) * 4;
      const created = node(name);
      if (stack.length > 0) stack[stack.length - 1]!.children.push(created);
      else root = created;
      stack.push(created);
    } else if (token === FdtToken.PROP) {
      const length = u32();
      const name = cString(offsetStrings + u32());
      const bytes = blob.slice(at, at + length);
      at += Math.ceil(length / 4) * 4;
      stack[stack.length - 1]!.properties.push([name, { kind: 'bytes', bytes }]);
    } else if (token === FdtToken.END_NODE) {
      stack.pop();
    } else if (token === FdtToken.END) {
      break;
    } else if (token !== 4 /* NOP */) {
      throw new Error(`bad device tree token ${token}`);
    }
  }
  if (root === undefined) throw new Error('empty device tree');
  return root;
}
