/**
 * Physical memory protection (privileged spec 3.7): the active regions built from the pmpcfg
 * and pmpaddr registers (which the hart holds and csr-file.ts writes), and the check that every
 * physical access, page-table reads included, passes.
 */
import { pageBytes } from '../memory/ram.js';
import { PmpCfg, Priv, pmpEntries, type PrivilegeLevel } from './csr.js';

/** An active PMP region: [bottom, top) in bytes, with its configuration byte. */
export interface PmpRegion {
  readonly bottom: number;
  readonly top: number;
  readonly cfg: number;
}

/** The active regions in priority order (3.7.1: TOR, NA4, NAPOT; OFF entries are left out). */
export function pmpRegions(pmpcfg: Uint8Array, pmpaddr: Int32Array): PmpRegion[] {
  const regions: PmpRegion[] = [];
  let previousTop = 0;
  for (let i = 0; i < pmpEntries; i++) {
    const cfg = pmpcfg[i]!;
    const mode = (cfg & PmpCfg.A) >>> 3;
    const address = (pmpaddr[i]! >>> 0) * 4;
    let bottom = 0;
    let top = 0;
    if (mode === 1) {
      bottom = previousTop;
      top = address;
    } else if (mode === 2) {
      bottom = address;
      top = address + 4;
    } else if (mode === 3) {
      const size = 2 ** (countTrailingOnes(pmpaddr[i]! >>> 0) + 3);
      bottom = Math.floor(address / size) * size;
      top = bottom + size;
    }
    previousTop = address;
    if (mode !== 0 && bottom < top) regions.push({ bottom, top, cfg });
  }
  return regions;
}

/**
 * Checks an access of `width` bytes at `physical` that needs `permission` (R, W or X) at
 * privilege `priv`. Bit 0 of the result says whether the access is allowed, bit 1 whether
 * that holds for its whole page (so the page may enter a TLB).
 */
export function pmpCheck(regions: readonly PmpRegion[], physical: number, width: number, permission: PmpCfg, priv: PrivilegeLevel): number {
  const pageStart = physical - (physical % pageBytes);
  const pageEnd = pageStart + pageBytes;
  for (let i = 0; i < regions.length; i++) {
    const { bottom, top, cfg } = regions[i]!;
    if (top <= physical || bottom >= physical + width) continue;
    // The first region that touches the access decides; all its bytes must be inside.
    if (!(bottom <= physical && physical + width <= top)) return 0;
    let uniform = bottom <= pageStart && pageEnd <= top;
    for (let j = 0; j < i && uniform; j++) if (regions[j]!.bottom < pageEnd && regions[j]!.top > pageStart) uniform = false;
    const allowed = (priv === Priv.M && (cfg & PmpCfg.L) === 0) || (cfg & permission) !== 0;
    return (allowed ? 1 : 0) | (uniform ? 2 : 0);
  }
  let uniform = true;
  for (let j = 0; j < regions.length && uniform; j++) if (regions[j]!.bottom < pageEnd && regions[j]!.top > pageStart) uniform = false;
  // No region matches: M-mode may, S and U may not (16 entries are implemented).
  return (priv === Priv.M ? 1 : 0) | (uniform ? 2 : 0);
}

function countTrailingOnes(value: number): number {
  let count = 0;
  while (count < 32 && ((value >>> count) & 1) === 1) count++;
  return count;
}
