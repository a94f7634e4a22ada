/**
 * Warming up the CPU before a process runs its real guest: the warm-up guest
 * (guests/warmup/warmup.c) runs to power-off, in one or a few rounds
 * ({@link warmUpRoundsDefault}), in scratch machines of its own.
 *
 * Why: V8 compiles the interpreter's run loop (`Hart.run`, one large function) from the type
 * feedback its earlier executions left. Each instruction case or slow path the guest reaches
 * for the first time after that finds no feedback, deoptimizes the compiled code, and the
 * loop is compiled again, 40-300 ms each time: a Linux boot did that some 25 times, most of
 * its first boot's CPU time (docs/BENCHMARKS.md, "Warming up the interpreter"). The warm-up
 * guest takes every such path in about 4,400 instructions (some 15 ms), short enough that V8
 * does not compile the loop during its first round (V8 compiles a function once it has run
 * a while with no new feedback), so that its first compile sees them all. The later rounds
 * get that compile started early (see warmUpRoundsDefault).
 *
 * Nothing of the scratch machine reaches the real one: it has its own RAM, devices and
 * virtual clock, and the machine core keeps no state between machines (a test compares a
 * guest's digest after a warm-up with one without). It is kept, not thrown away, for V8's
 * sake ({@link keptMachines}). Host-side only: the machine core never reads files (the
 * warm-up guest is a file like any other guest).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Machine, type CpuMode } from '../machine/board.js';
import { VirtualClock } from '../machine/clock.js';
import { loadImage } from '../machine/loader/elf.js';
import { projectRoot, type BootPlan } from './guest-image.js';

/** The warm-up guest, built by guests/Makefile. */
export const warmUpGuestFile = path.join(projectRoot, 'guests/build/warmup.elf');
/** The environment variable that turns the warm-up off when set to 0, or sets its rounds (1-999; for A/B measurements). */
export const warmUpEnvironmentVariable = 'UNDERSTUDY_WARMUP';
/**
 * Rounds of the warm-up guest on the interpreter. The first gives V8 the loop's feedback for
 * every path; the next ones run the loop until V8 decides to compile it, which it then does on
 * a background thread while this process reads the guest's files and builds its machine,
 * instead of during the boot's first instructions. The first compile still comes after the
 * first round, so it still sees every path. Measured on Linux boots (docs/BENCHMARKS.md): the
 * prompt some 100 ms sooner with 4 rounds than with 1.
 *
 * On the translation tier, one round: there the guest's hot loops leave the interpreter after
 * a while, so later rounds run little of the loop, V8 compiled it from feedback that missed
 * paths the boot then took, and the boot deoptimized and compiled it again (4 rounds: the
 * prompt 60-130 ms later).
 */
export function warmUpRoundsDefault(cpu: CpuMode): number {
  return cpu === 'interp' ? 4 : 1;
}

/** The warm-up guest's link script puts its stack at the top of 1 MiB (guests/warmup/link.ld). */
const scratchRamBytes = 1024 * 1024;
/** The warm-up retires about 4,400 instructions: a run far past that is broken, and abandoned. */
export const warmUpInstructionsMax = 200_000;
/**
 * Instructions per `run` call: several calls, so that V8 allocates the loop's feedback early
 * (it does so at a call or a budget check, not at once) and nothing taken late goes unrecorded.
 */
const runBudgetInstructions = 10_000;
/** Calls of `run` at most (WFI returns early): bounds a guest that sleeps with nothing to wake it. */
const runCallsMax = 1_000;

export type WarmUpOutcome =
  /** `instructions`: of one round. */
  | { readonly kind: 'done'; readonly instructions: number; readonly rounds: number }
  /** Nothing ran: turned off, already done in this process, a tier that needs none, or no warm-up guest. */
  | { readonly kind: 'skipped'; readonly reason: string }
  /** The warm-up guest did not end as it should (a bad file, a bug): harmless, but worth a verbose line. */
  | { readonly kind: 'failed'; readonly reason: string };

export interface WarmUpOptions {
  /** Another warm-up guest (tests); default {@link warmUpGuestFile}. */
  readonly file?: string;
  /** Where to say what happened (a verbose log); default nowhere. */
  readonly log?: (line: string) => void;
  /** Run even if this process has warmed up this tier before (tests). */
  readonly again?: boolean;
}

/**
 * Whether a process warms up before booting a guest of this kind: for Linux only. A kernel
 * reaches nearly every path through the interpreter, and without the warm-up its boot
 * deoptimized and recompiled the loop some 22 times (the boot took 2.5 times as long). A
 * bare-metal guest reaches few paths: V8 compiles only those, small and fast, and the
 * warm-up's whole compile would cost it more than it saves (the hello guest +63 ms, fpbench
 * +0.15 s; docs/BENCHMARKS.md).
 */
export function warmsUp(kind: BootPlan['kind']): boolean {
  return kind === 'linux';
}

const warmedTiers = new Set<CpuMode>();
/**
 * The scratch machines, one per tier, kept for the life of the process. V8's type feedback holds the hidden
 * classes ("maps") it saw weakly: once no object of the scratch machine's maps lived, a garbage
 * collection dropped them, the run loop's feedback with them, and a boot that began after one
 * deoptimized as often as without a warm-up (measured: 1.3 s against 0.7 s). The kept machine
 * (1 MiB of RAM) keeps every map of a machine alive, and so its feedback valid for the next
 * machine built the same way.
 */
const keptMachines = new Map<CpuMode, Machine>();

/**
 * Runs the warm-up guest on `cpu`'s tier, once per process and tier. Never throws: a missing
 * or broken warm-up guest only makes the real guest start slower.
 */
export function warmUpCpu(cpu: CpuMode, options: WarmUpOptions = {}): WarmUpOutcome {
  const outcome = warmUp(cpu, options);
  if (options.log !== undefined && outcome.kind !== 'skipped') {
    options.log(outcome.kind === 'done' ? `CPU warm-up: ${outcome.rounds} × ${outcome.instructions} instructions` : `CPU warm-up failed: ${outcome.reason}`);
  }
  return outcome;
}

/** The rounds `UNDERSTUDY_WARMUP` asks for (0: none), else {@link warmUpRoundsDefault}. */
function warmUpRounds(cpu: CpuMode): number {
  const value = process.env[warmUpEnvironmentVariable];
  if (value === undefined || !/^\d{1,3}$/.test(value)) return warmUpRoundsDefault(cpu);
  return Number(value);
}

function warmUp(cpu: CpuMode, options: WarmUpOptions): WarmUpOutcome {
  const rounds = warmUpRounds(cpu);
  if (rounds === 0) return { kind: 'skipped', reason: `${warmUpEnvironmentVariable}=0` };
  // Lockstep is a checking mode: its speed is not the point, and its reference machine would
  // double the warm-up's cost.
  if (cpu === 'lockstep') return { kind: 'skipped', reason: 'lockstep mode' };
  if (warmedTiers.has(cpu) && options.again !== true) return { kind: 'skipped', reason: 'already warm' };
  warmedTiers.add(cpu);
  const file = options.file ?? warmUpGuestFile;
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    return { kind: 'skipped', reason: `no warm-up guest at ${file}` };
  }
  try {
    let outcome: WarmUpOutcome = { kind: 'skipped', reason: 'no rounds' };
    for (let round = 0; round < rounds; round++) {
      outcome = runToPowerOff(cpu, bytes, round + 1);
      if (outcome.kind !== 'done') break;
    }
    return outcome;
  } catch (error) {
    return { kind: 'failed', reason: error instanceof Error ? error.message : String(error) };
  }
}

/** The host loop of a guest on the virtual clock (as bench/boot-to-prompt.ts), its outputs dropped. */
function runToPowerOff(cpu: CpuMode, image: Uint8Array, round: number): WarmUpOutcome {
  const clock = new VirtualClock();
  const machine = new Machine({ ramBytes: scratchRamBytes, disks: [] }, clock, { cpu });
  machine.load(loadImage(image));
  for (let calls = 0; calls < runCallsMax && machine.power === undefined && machine.retiredInstructions < warmUpInstructionsMax; calls++) {
    const result = machine.run(runBudgetInstructions);
    machine.takeOutputs();
    if (result.reason === 'wfi' && machine.isIdle) {
      const deadline = machine.clockDeadline;
      if (deadline === undefined) break;
      clock.skipTo(deadline, machine.retiredInstructions);
    }
    machine.applyEvent({ kind: 'clock', mtime: clock.mtimeNow(machine.retiredInstructions) });
  }
  keptMachines.set(cpu, machine);
  const power = machine.power;
  if (power?.kind === 'poweroff' && power.status === 0) return { kind: 'done', instructions: machine.retiredInstructions, rounds: round };
  return { kind: 'failed', reason: `the warm-up guest stopped at ${machine.retiredInstructions} instructions, ${power === undefined ? 'still running' : JSON.stringify(power)}` };
}
