#!/usr/bin/env node
/*
 * Boots the Linux guest built by linux/build.sh on QEMU (the reference machine), drives its
 * shell through the serial console the way a person would, and checks every built-in command,
 * the data disk (read back from the host with debugfs), poweroff, reboot and `exit`, and that
 * a corrupt kernel or initramfs ends the run instead of hanging it.
 *
 * Usage: node linux/qemu-check.mjs [--cpu understudy|qemu] [--icount] [--verbose]
 *   --cpu understudy  (default) an RV32IMA hart without C, F, D, H, Sstc or bit-manipulation,
 *                     like understudy's: any compressed instruction would trap
 *   --cpu qemu        QEMU's default rv32 CPU
 *   --icount          run with -icount shift=0,sleep=off: one nanosecond of guest time per
 *                     instruction, so the guest's uptime at the prompt estimates instructions
 *   --verbose         copy the console to stderr as it arrives
 * Prints one line per check and ends with "N passed, M failed"; exits non-zero on failure.
 * Needs qemu-system-riscv32, mkfs.ext2 and debugfs (Debian: qemu-system-misc, e2fsprogs).
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const prompt = 'understudy$ ';
const bootTimeoutMs = 60_000;
const commandTimeoutMs = 30_000;
const benchTimeoutMs = 120_000;
const exitTimeoutMs = 20_000;
const dataImageMiB = 32;
const diskbenchMiB = 2;

const cpuModels = {
  understudy: 'rv32,c=false,f=false,d=false,h=false,sstc=false,zba=false,zbb=false,zbc=false,zbs=false',
  qemu: 'rv32',
};

const here = path.dirname(fileURLToPath(import.meta.url));
const cache = process.env.UNDERSTUDY_LINUX_CACHE ?? path.join(path.dirname(here), '.cache', 'linux');
const files = {
  firmware: path.join(cache, 'understudy-sbi.bin'),
  kernel: path.join(cache, 'Image'),
  initramfs: path.join(cache, 'initramfs.cpio'),
};

const args = process.argv.slice(2);
const cpuName = args.includes('--cpu') ? args[args.indexOf('--cpu') + 1] : 'understudy';
const useIcount = args.includes('--icount');
const verbose = args.includes('--verbose');
if (!(cpuName in cpuModels)) {
  console.error(`qemu-check: unknown --cpu ${cpuName}; use one of ${Object.keys(cpuModels).join(', ')}`);
  process.exit(2);
}
for (const [name, file] of Object.entries(files)) {
  if (!existsSync(file)) {
    console.error(`qemu-check: the ${name} ${file} is missing; run linux/build.sh first`);
    process.exit(2);
  }
}

let passed = 0;
let failed = 0;
function check(name, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok' : 'not ok'} - ${name}${!ok && detail ? `: ${detail}` : ''}`);
}

/** One QEMU process with the guest's console on its standard input and output. */
class Guest {
  constructor({ dataImage, kernel = files.kernel, initramfs = files.initramfs }) {
    const qemuArgs = [
      '-M', 'virt', '-cpu', cpuModels[cpuName], '-m', '128M', '-smp', '1',
      '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
      '-bios', files.firmware, '-kernel', kernel, '-initrd', initramfs,
      '-append', 'console=ttyS0 earlycon=sbi',
      ...(useIcount ? ['-icount', 'shift=0,sleep=off'] : []),
      ...(dataImage === undefined ? [] : [
        '-drive', `file=${dataImage},if=none,format=raw,id=data`,
        '-device', 'virtio-blk-device,drive=data',
        '-global', 'virtio-mmio.force-legacy=false',
      ]),
    ];
    this.startedMs = Date.now();
    this.console = '';
    this.process = spawn('qemu-system-riscv32', qemuArgs, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exit = new Promise((resolve) => this.process.on('exit', (code, signal) => resolve({ code, signal })));
    this.exited = undefined;
    this.exit.then((status) => { this.exited = status; });
    const take = (chunk) => {
      const text = chunk.toString('latin1').replace(/\r\n/g, '\n').replace(/\r/g, '');
      this.console += text;
      if (verbose) process.stderr.write(text);
    };
    this.process.stdout.on('data', take);
    this.process.stderr.on('data', take);
    this.waiters = [];
    this.process.stdout.on('data', () => this.wake());
    this.exit.then(() => this.wake());
  }

  wake() {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  /** Resolves with the index just past the first `needle` found at or after `from`. */
  async waitFor(needle, from, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = this.console.indexOf(needle, from);
      if (at >= 0) return at + needle.length;
      if (this.exited !== undefined) throw new Error(`QEMU exited (code ${this.exited.code}) while waiting for ${JSON.stringify(needle)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${JSON.stringify(needle)}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  send(text) {
    this.process.stdin.write(text);
  }

  /** Types `line`, waits for the next prompt and returns what the command printed. */
  async run(line, timeoutMs = commandTimeoutMs) {
    const mark = this.console.length;
    this.send(`${line}\n`);
    const end = await this.waitFor(prompt, mark, timeoutMs);
    const transcript = this.console.slice(mark, end - prompt.length);
    // The terminal echoes the typed line first.
    const newline = transcript.indexOf('\n');
    return newline < 0 ? '' : transcript.slice(newline + 1);
  }

  async waitForExit(timeoutMs) {
    const timeout = new Promise((resolve) => setTimeout(() => resolve(undefined), timeoutMs));
    const status = await Promise.race([this.exit, timeout]);
    if (status === undefined) this.process.kill('SIGKILL');
    return status;
  }

  kill() {
    if (this.exited === undefined) this.process.kill('SIGKILL');
  }
}

function makeDataImage(directory) {
  const image = path.join(directory, 'data.img');
  execFileSync('truncate', ['-s', `${dataImageMiB}M`, image]);
  execFileSync('mkfs.ext2', ['-q', '-F', '-L', 'understudy-data', image], { stdio: 'pipe' });
  return image;
}

function debugfs(image, request) {
  return execFileSync('debugfs', ['-R', request, image], { stdio: ['ignore', 'pipe', 'pipe'] }).toString('latin1');
}

/** The diskbench file's word at `index`; must match pattern_word() in userland/sh.c. */
function patternWord(index) {
  let x = (Math.imul(index, 0x9e3779b1) + 0x7f4a7c15) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x2c1b3c6d) >>> 0;
  x = (x ^ (x >>> 12)) >>> 0;
  return x;
}

async function checkShell(directory) {
  const image = makeDataImage(directory);
  const guest = new Guest({ dataImage: image });
  try {
    await guest.waitFor(prompt, 0, bootTimeoutMs);
    const bootMs = Date.now() - guest.startedMs;
    check('boots to the prompt', true);
    check('init mounts the data disk', guest.console.includes('understudy: /data mounted (/dev/vda, ext2)'));
    check('the kernel found SBI SRST', guest.console.includes('SBI SRST extension detected'));

    const uptime = await guest.run('uptime');
    check('uptime', /^up \d+\.\d\d s, idle \d+\.\d\d s\n$/.test(uptime), uptime);
    console.log(`# boot to prompt: ${bootMs} ms on the host; guest ${uptime.trim()}`);

    const echo = await guest.run('echo hello   world "two  spaces" \'single\' back\\ slash');
    check('echo with quotes', echo === 'hello world two  spaces single back slash\n', echo);

    const ls = await guest.run('ls /');
    check('ls /', /^- +\d+ init$/m.test(ls) && /^d +\d+ bin$/m.test(ls) && /^d +\d+ data$/m.test(ls), ls);
    check('ls a file', /^- +\d+ \/bin\/sh\n$/.test(await guest.run('ls /bin/sh')));

    check('write', (await guest.run('write /data/note.txt understudy was here')) === '');
    check('cat', (await guest.run('cat /data/note.txt')) === 'understudy was here\n');
    check('echo >> appends', (await guest.run('echo second line >> /data/note.txt')) === '');
    check('echo > truncates', (await guest.run('echo fresh > /tmp/t')) === '' &&
      (await guest.run('echo again > /tmp/t')) === '' && (await guest.run('cat /tmp/t')) === 'again\n');
    check('cat after append', (await guest.run('cat /data/note.txt')) === 'understudy was here\nsecond line\n');

    check('mkdir', (await guest.run('mkdir /data/dir')) === '');
    check('ls shows the directory', /^d +\d+ dir$/m.test(await guest.run('ls /data')));
    await guest.run('write /data/dir/file x');
    check('rm a file', (await guest.run('rm /data/dir/file')) === '');
    check('rm an empty directory', (await guest.run('rm /data/dir')) === '');
    check('the directory is gone', !/ dir$/m.test(await guest.run('ls /data')));
    check('cd and pwd', (await guest.run('cd /data')) === '' && (await guest.run('pwd')) === '/data\n');
    check('relative paths', /note\.txt/.test(await guest.run('ls')) && (await guest.run('cd')) === '');

    const mounts = await guest.run('mount');
    check('mount lists /data', /^\/dev\/vda \/data ext2 /m.test(mounts) && /^proc \/proc proc /m.test(mounts), mounts);
    check('sync', (await guest.run('sync')) === '');

    const date = await guest.run('date');
    const dateMatch = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) UTC \((\d+) s since 1970\)\n$/.exec(date);
    const dateAgrees = dateMatch !== null &&
      new Date(Number(dateMatch[7]) * 1000).toISOString().slice(0, 19).replace('T', ' ') ===
        `${dateMatch[1]}-${dateMatch[2]}-${dateMatch[3]} ${dateMatch[4]}:${dateMatch[5]}:${dateMatch[6]}`;
    check('date (calendar matches the epoch seconds)', dateAgrees, date);
    check('date is near the host clock', dateMatch !== null && Math.abs(Number(dateMatch[7]) - Date.now() / 1000) < 300, date);

    const cpu = await guest.run('cpubench', benchTimeoutMs);
    check('cpubench', /^cpubench: 10 rounds, checksum 0x[0-9a-f]{8}, \d+\.\d{3} ms\n$/.test(cpu), cpu);
    console.log(`# ${cpu.trim()}`);
    const disk = await guest.run(`diskbench ${diskbenchMiB}`, benchTimeoutMs);
    check('diskbench', /diskbench: OK\n$/.test(disk) && /direct I\/O/.test(disk), disk);
    console.log(`# ${disk.trim().replace(/\n/g, '\n# ')}`);

    check('unknown command', /^sh: frobnicate: unknown command/.test(await guest.run('frobnicate --now')));
    check('unterminated quote', /syntax error: unterminated quote/.test(await guest.run('echo "open')));
    check('redirect without a file', /syntax error: missing file name/.test(await guest.run('echo x >')));
    check('bad number', /^diskbench: usage/.test(await guest.run('diskbench lots')));
    check('missing file', /^cat: \/nope: no such file or directory\n$/.test(await guest.run('cat /nope')));
    check('overlong line', /line too long/.test(await guest.run('echo ' + 'x'.repeat(3000))));
    check('empty line', (await guest.run('')) === '');
    check('comment', (await guest.run('# nothing here')) === '');
    check('backspace', (await guest.run('echo abX\bc')) === 'abc\n');

    // Input split across writes: the shell must assemble the line.
    const mark = guest.console.length;
    guest.send('ec');
    await new Promise((resolve) => setTimeout(resolve, 300));
    guest.send('ho split');
    await new Promise((resolve) => setTimeout(resolve, 300));
    guest.send(' line\n');
    const end = await guest.waitFor(prompt, mark, commandTimeoutMs);
    check('input in pieces', guest.console.slice(mark, end).includes('\nsplit line\n'));

    const help = await guest.run('help');
    const helpNames = ['echo', 'ls', 'cat', 'write', 'rm', 'mkdir', 'sync', 'mount', 'uptime', 'date', 'cpubench',
      'diskbench', 'poweroff', 'reboot', 'help', 'exit'];
    check('help lists every command', helpNames.every((name) => new RegExp(`^  ${name}\\b`, 'm').test(help)), help);

    guest.send('poweroff\n');
    const status = await guest.waitForExit(exitTimeoutMs);
    check('poweroff ends QEMU with status 0', status !== undefined && status.code === 0, JSON.stringify(status));
    check('the kernel powered down', guest.console.includes('reboot: Power down'));

    // The host reads the disk back.
    let note = '';
    try {
      note = debugfs(image, 'cat /note.txt');
    } catch (error) {
      note = String(error);
    }
    check('debugfs reads the note', note === 'understudy was here\nsecond line\n', JSON.stringify(note));
    const dumped = path.join(directory, 'bench.bin');
    debugfs(image, `dump /bench.bin ${dumped}`);
    const bench = existsSync(dumped) ? readFileSync(dumped) : Buffer.alloc(0);
    let patternOk = bench.length === diskbenchMiB * 1024 * 1024;
    for (let i = 0; patternOk && i < bench.length / 4; i++) patternOk = bench.readUInt32LE(i * 4) === patternWord(i);
    check('debugfs reads the diskbench pattern', patternOk, `${bench.length} bytes`);
    const header = execFileSync('dumpe2fs', ['-h', image], { stdio: ['ignore', 'pipe', 'pipe'] }).toString('latin1');
    check('poweroff leaves the file system marked clean', /^Filesystem state:\s+clean$/m.test(header));
    const fsck = (() => {
      try {
        execFileSync('e2fsck', ['-fn', image], { stdio: 'pipe' });
        return true;
      } catch {
        return false;
      }
    })();
    check('e2fsck finds the data disk clean', fsck);
  } finally {
    guest.kill();
  }
}

async function checkWithoutDisk() {
  const guest = new Guest({});
  try {
    await guest.waitFor(prompt, 0, bootTimeoutMs);
    check('boots without a data disk', guest.console.includes('understudy: no data disk (/dev/vda); /data is not mounted'));
    guest.send('exit 3\n');
    const status = await guest.waitForExit(exitTimeoutMs);
    check('exit makes init power off', status !== undefined && status.code === 0 &&
      guest.console.includes('understudy: shell exited with status 3; powering off'), JSON.stringify(status));
  } finally {
    guest.kill();
  }
}

async function checkReboot() {
  const guest = new Guest({});
  try {
    await guest.waitFor(prompt, 0, bootTimeoutMs);
    guest.send('reboot\n');
    const status = await guest.waitForExit(exitTimeoutMs);
    // -no-reboot turns the guest's reset request into QEMU exiting.
    check('reboot requests a reset', status !== undefined && guest.console.includes('reboot: Restarting system'),
      JSON.stringify(status));
  } finally {
    guest.kill();
  }
}

/** Broken inputs must end the run with a message, never hang it. */
async function checkBrokenInputs(directory) {
  const garbage = path.join(directory, 'garbage.bin');
  writeFileSync(garbage, Buffer.from(Array.from({ length: 65536 }, (_, i) => (Math.imul(i, 2654435761) >>> 24) & 0xff)));
  const badKernel = new Guest({ kernel: garbage });
  const kernelStatus = await badKernel.waitForExit(exitTimeoutMs);
  check('a corrupt kernel stops the firmware with status 3', kernelStatus !== undefined && kernelStatus.code === 3 &&
    badKernel.console.includes('understudy-sbi: no Linux Image'), JSON.stringify(kernelStatus));
  const badInitramfs = new Guest({ initramfs: garbage });
  const initramfsStatus = await badInitramfs.waitForExit(bootTimeoutMs);
  // The kernel panics (no init) and CONFIG_PANIC_TIMEOUT=-1 restarts at once; -no-reboot exits.
  check('a corrupt initramfs panics and restarts', initramfsStatus !== undefined &&
    badInitramfs.console.includes('Initramfs unpacking failed') && badInitramfs.console.includes('Kernel panic'),
  JSON.stringify(initramfsStatus));
}

const directory = mkdtempSync(path.join(tmpdir(), 'understudy-qemu-'));
try {
  console.log(`# QEMU CPU: ${cpuName} (${cpuModels[cpuName]})${useIcount ? ', -icount shift=0,sleep=off' : ''}`);
  for (const scenario of [checkShell, checkWithoutDisk, checkReboot, checkBrokenInputs]) {
    try {
      await scenario(directory);
    } catch (error) {
      check(scenario.name, false, error instanceof Error ? error.message : String(error));
    }
  }
} finally {
  rmSync(directory, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
