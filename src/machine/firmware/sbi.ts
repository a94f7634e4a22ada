/**
 * The machine's M-mode firmware for Linux, implemented by the hypervisor itself: the RISC-V
 * Supervisor Binary Interface (SBI spec v1.0), like the OpenSBI that QEMU's virt board loads.
 *
 * With firmware installed, a trap that would enter M-mode runs here instead, in zero guest
 * instructions, and returns to the interrupted mode as an MRET would. Linux's S-mode sees:
 * BASE, TIME, IPI, RFENCE, HSM and SRST, plus the legacy calls (console putchar/getchar for
 * `earlycon=sbi`, set_timer, shutdown). The timer works as in OpenSBI: set_timer programs
 * mtimecmp and enables the M timer interrupt; when it fires the firmware raises STIP for S
 * and masks MTIE again.
 */
import type { Hart, MachineModeFirmware } from '../cpu/cpu.js';
import { Mip, Priv } from '../cpu/csr.js';
import type { PowerRequest } from '../devices/test-device.js';

export const Sbi = {
  specVersion: (1 << 24) | 0, // v1.0
  /** Implementation id: not one of the registered ids (0..10); "US" in ASCII. */
  implementationId: 0x5553,
  implementationVersion: 1,
} as const;

export const SbiError = { SUCCESS: 0, FAILED: -1, NOT_SUPPORTED: -2, INVALID_PARAM: -3, DENIED: -4, INVALID_ADDRESS: -5 } as const;

export const SbiExtension = {
  LEGACY_SET_TIMER: 0x00, LEGACY_CONSOLE_PUTCHAR: 0x01, LEGACY_CONSOLE_GETCHAR: 0x02, LEGACY_CLEAR_IPI: 0x03,
  LEGACY_SEND_IPI: 0x04, LEGACY_REMOTE_FENCE_I: 0x05, LEGACY_REMOTE_SFENCE_VMA: 0x06, LEGACY_REMOTE_SFENCE_VMA_ASID: 0x07,
  LEGACY_SHUTDOWN: 0x08,
  BASE: 0x10, TIME: 0x54494d45, IPI: 0x735049, RFENCE: 0x52464e43, HSM: 0x48534d, SRST: 0x53525354,
} as const;

const implemented = new Set<number>([
  SbiExtension.BASE, SbiExtension.TIME, SbiExtension.IPI, SbiExtension.RFENCE, SbiExtension.HSM, SbiExtension.SRST,
  SbiExtension.LEGACY_SET_TIMER, SbiExtension.LEGACY_CONSOLE_PUTCHAR, SbiExtension.LEGACY_CONSOLE_GETCHAR,
  SbiExtension.LEGACY_CLEAR_IPI, SbiExtension.LEGACY_SEND_IPI, SbiExtension.LEGACY_REMOTE_FENCE_I,
  SbiExtension.LEGACY_REMOTE_SFENCE_VMA, SbiExtension.LEGACY_REMOTE_SFENCE_VMA_ASID, SbiExtension.LEGACY_SHUTDOWN,
]);

const Cause = { ECALL_FROM_S: 9, INTERRUPT: 0x8000_0000 } as const;
const Irq = { MSI: 3, MTI: 7, MEI: 11 } as const;
const HsmState = { STARTED: 0 } as const;

/** What the firmware may touch besides the hart. */
export interface FirmwarePorts {
  /** Sets the CLINT's mtimecmp (64 bits). */
  setTimerCompare(value: bigint): void;
  putchar(byte: number): void;
  /** The next console input byte, or -1. */
  getchar(): number;
  power(request: PowerRequest): void;
}

export class SbiFirmware implements MachineModeFirmware {
  /** Calls by extension id, for the status view and tests. */
  readonly callCounts = new Map<number, number>();

  constructor(private readonly ports: FirmwarePorts) {}

  trap(hart: Hart, cause: number, _tval: number, pc: number): number {
    if (cause < 0) return this.interrupt(hart, cause & 0x7fff_ffff, pc);
    if (cause === Cause.ECALL_FROM_S && hart.priv === Priv.S) {
      this.call(hart);
      return (pc + 4) | 0;
    }
    // Anything else that reaches M is handed to S-mode as its own trap, as OpenSBI does.
    return hart.redirectToSupervisor(cause, _tval, pc);
  }

  private interrupt(hart: Hart, irq: number, pc: number): number {
    if (irq === Irq.MTI) {
      hart.mie &= ~Mip.MTIP;
      hart.mipSoftware |= Mip.STIP;
    } else if (irq === Irq.MSI) {
      hart.mie &= ~Mip.MSIP;
      hart.mipSoftware |= Mip.SSIP;
    } else {
      // The M-mode PLIC context is never enabled by S-mode software; mask it if it fires.
      hart.mie &= ~(1 << irq);
    }
    return pc;
  }

  private call(hart: Hart): void {
    const x = hart.x;
    const extension = x[17]! >>> 0; // a7
    const fn = x[16]! >>> 0; // a6
    this.callCounts.set(extension, (this.callCounts.get(extension) ?? 0) + 1);
    const a0 = x[10]!;
    const a1 = x[11]!;
    const ok = (value = 0): void => {
      x[10] = SbiError.SUCCESS;
      x[11] = value;
    };
    const fail = (error: number): void => {
      x[10] = error;
    };
    switch (extension) {
      case SbiExtension.LEGACY_SET_TIMER:
        this.setTimer(hart, a0, a1);
        x[10] = 0;
        return;
      case SbiExtension.LEGACY_CONSOLE_PUTCHAR:
        this.ports.putchar(a0 & 0xff);
        x[10] = 0;
        return;
      case SbiExtension.LEGACY_CONSOLE_GETCHAR:
        x[10] = this.ports.getchar();
        return;
      case SbiExtension.LEGACY_CLEAR_IPI:
        hart.mipSoftware &= ~Mip.SSIP;
        x[10] = 0;
        return;
      case SbiExtension.LEGACY_SEND_IPI:
        hart.mipSoftware |= Mip.SSIP; // one hart: any mask that names a hart names us
        x[10] = 0;
        return;
      case SbiExtension.LEGACY_REMOTE_FENCE_I:
      case SbiExtension.LEGACY_REMOTE_SFENCE_VMA:
      case SbiExtension.LEGACY_REMOTE_SFENCE_VMA_ASID:
        hart.flushTlb();
        x[10] = 0;
        return;
      case SbiExtension.LEGACY_SHUTDOWN:
        this.ports.power({ kind: 'poweroff', status: 0 });
        x[10] = 0;
        return;
      case SbiExtension.BASE:
        switch (fn) {
          case 0: return ok(Sbi.specVersion);
          case 1: return ok(Sbi.implementationId);
          case 2: return ok(Sbi.implementationVersion);
          case 3: return ok(implemented.has(a0 >>> 0) ? 1 : 0);
          case 4: case 5: case 6: return ok(0); // mvendorid, marchid, mimpid
          default: return fail(SbiError.NOT_SUPPORTED);
        }
      case SbiExtension.TIME:
        if (fn !== 0) return fail(SbiError.NOT_SUPPORTED);
        this.setTimer(hart, a0, a1);
        return ok();
      case SbiExtension.IPI:
        if (fn !== 0) return fail(SbiError.NOT_SUPPORTED);
        if (this.namesHartZero(a0, a1)) hart.mipSoftware |= Mip.SSIP;
        return ok();
      case SbiExtension.RFENCE:
        if (fn > 6) return fail(SbiError.NOT_SUPPORTED);
        if (fn >= 3) return fail(SbiError.NOT_SUPPORTED); // the hypervisor-extension fences
        hart.flushTlb();
        return ok();
      case SbiExtension.HSM:
        if (fn === 2) return a0 === 0 ? ok(HsmState.STARTED) : fail(SbiError.INVALID_PARAM); // hart_get_status
        if (fn === 0) return fail(a0 === 0 ? -6 /* ALREADY_AVAILABLE */ : SbiError.INVALID_PARAM); // hart_start
        return fail(SbiError.NOT_SUPPORTED);
      case SbiExtension.SRST:
        if (fn !== 0) return fail(SbiError.NOT_SUPPORTED);
        return this.systemReset(a0 >>> 0, a1 >>> 0, ok, fail);
      default:
        return fail(SbiError.NOT_SUPPORTED);
    }
  }

  private setTimer(hart: Hart, low: number, high: number): void {
    const value = (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
    hart.mipSoftware &= ~Mip.STIP;
    this.ports.setTimerCompare(value);
    hart.mie |= Mip.MTIP;
  }

  /** SBI hart masks: `mask` of harts counted from `base` (base = -1: all harts). */
  private namesHartZero(mask: number, base: number): boolean {
    if (base === -1) return true;
    return base === 0 && (mask & 1) === 1;
  }

  private systemReset(type: number, reason: number, ok: () => void, fail: (error: number) => void): void {
    const shutdown = 0;
    const coldReboot = 1;
    const warmReboot = 2;
    if (reason > 1 && reason < 0xe000_0000) return fail(SbiError.INVALID_PARAM);
    if (type === shutdown) this.ports.power({ kind: 'poweroff', status: reason === 1 ? 1 : 0 });
    else if (type === coldReboot || type === warmReboot) this.ports.power({ kind: 'reset' });
    else return fail(SbiError.INVALID_PARAM);
    ok();
  }
}
