#!/usr/bin/env node
/*
 * Boots the Linux guest built by linux/build.sh on QEMU (the reference machine), drives its
 * BusyBox shell through the serial console the way a person would (files, pipes, Ctrl-C,
 * cpubench and diskbench, e2fsck in the guest), checks the ext4 data disk from the host
 * (debugfs, dumpe2fs, e2fsck), poweroff, reboot and `exit`, and that a corrupt kernel or
 * initramfs ends the run instead of hanging it.
 *
 * Usage: node linux/qemu-check.mjs [--cpu understudy|qemu] [--icount] [--kernel IMAGE] [--verbose]
 *   --cpu understudy  (default) an RV32IMAFDC hart without H, Sstc or bit-manipulation,
 *                     like understudy's
 *   --cpu qemu        QEMU's default rv32 CPU
 *   --icount          run with -icount shift=0,sleep=off: one nanosecond of guest time per
 *                     instruction, so the guest's uptime at the prompt estimates instructions
 *   --kernel IMAGE    boot another kernel with the same firmware and initramfs, e.g. the
 *                     standard one (.cache/linux-defconfig/Image, linux/build.sh --defconfig)
 *   --verbose         copy the console to stderr as it arrives
 * Prints one line per check and ends with "N passed, M failed"; exits non-zero on failure.
 * Needs qemu-system-riscv32, mkfs.ext4 and debugfs (Debian: qemu-system-misc, e2fsprogs).
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
  understudy: 'rv32,c=true,f=true,d=true,h=false,sstc=false,zba=false,zbb=false,zbc=false,zbs=false',
  qemu: 'rv32',
};

const here = path.dirname(fileURLToPath(import.meta.url));
const cache = process.env.UNDERSTUDY_LINUX_CACHE ?? path.join(path.dirname(here), '.cache', 'linux');
const args = process.argv.slice(2);
const kernelArgument = args.includes('--kernel') ? args[args.indexOf('--kernel') + 1] : undefined;
if (args.includes('--kernel') && (kernelArgument === undefined || kernelArgument.startsWith('--'))) {
  console.error('qemu-check: --kernel needs a file (a RISC-V Linux Image)');
  process.exit(2);
}
const files = {
  firmware: path.join(cache, 'understudy-sbi.bin'),
  kernel: kernelArgument === undefined ? path.join(cache, 'Image') : path.resolve(kernelArgument),
  initramfs: path.join(cache, 'initramfs.cpio'),
};
const cpuName = args.includes('--cpu') ? args[args.indexOf('--cpu') + 1] : 'understudy';
const useIcount = args.includes('--icount');
const verbose = args.includes('--verbose');
if (!(cpuName in cpuModels)) {
  console.error(`qemu-check: unknown --cpu ${cpuName}; use one of ${Object.keys(cpuModels).join(', ')}`);
  process.exit(2);
}
for (const [name, file] of Object.entries(files)) {
  if (!existsSync(file)) {
    console.error(`qemu-check: the ${name} ${file} is missing; run linux/build.sh${name === 'kernel' && kernelArgument !== undefined ? ' --defconfig' : ''} first`);
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
  constructor({ dataImage, kernel = files.kernel, initramfs = files.initramfs, append = 'console=ttyS0 earlycon=sbi' }) {
    const qemuArgs = [
      '-M', 'virt', '-cpu', cpuModels[cpuName], '-m', '128M', '-smp', '1',
      '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
      '-bios', files.firmware, '-kernel', kernel, '-initrd', initramfs,
      '-append', append,
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
  // As src/host/linux-guest.ts makes data disks: ext4 with a journal, tables written now.
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'data', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image], { stdio: 'pipe' });
  return image;
}

function debugfs(image, request) {
  return execFileSync('debugfs', ['-R', request, image], { stdio: ['ignore', 'pipe', 'pipe'] }).toString('latin1');
}

/** The diskbench file's word at `index`; must match pattern_word() in userland/diskbench.c. */
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
    check('init mounts the data disk', guest.console.includes('understudy: /data mounted (/dev/vda, ext4)'));
    check('the kernel found SBI SRST', guest.console.includes('SBI SRST extension detected'));

    const uptime = await guest.run('cat /proc/uptime');
    check('/proc/uptime', /^\d+\.\d\d \d+\.\d\d\n$/.test(uptime), uptime);
    console.log(`# boot to prompt: ${bootMs} ms on the host; guest uptime ${uptime.trim().split(' ')[0]} s`);

    const echo = await guest.run('echo hello   world "two  spaces" \'single\' back\\ slash');
    check('echo with quotes', echo === 'hello world two  spaces single back slash\n', echo);

    const ls = await guest.run('ls -1 /');
    check('ls /', ['init', 'bin', 'data', 'etc', 'proc', 'sbin'].every((name) => new RegExp(`^${name}$`, 'm').test(ls)), ls);
    check('BusyBox applets are links', /-> \/bin\/busybox\n$/.test(await guest.run('ls -l /bin/ls')));

    check('write a file', (await guest.run('echo understudy was here > /data/note.txt')) === '');
    check('cat', (await guest.run('cat /data/note.txt')) === 'understudy was here\n');
    check('echo >> appends', (await guest.run('echo second line >> /data/note.txt')) === '');
    check('cat after append', (await guest.run('cat /data/note.txt')) === 'understudy was here\nsecond line\n');
    check('a pipeline', (await guest.run('seq 10 | grep 1 | wc -l')) === '2\n');
    check('variables and arithmetic', (await guest.run('x=6; echo $((x * 7))')) === '42\n');
    check('command substitution', (await guest.run('echo "$(echo inner)"')) === 'inner\n');
    check('&& and ||', (await guest.run('false || true && echo yes')) === 'yes\n');
    check('globbing', (await guest.run('echo /data/no*')) === '/data/note.txt\n');

    check('mkdir', (await guest.run('mkdir /data/dir && echo x > /data/dir/file')) === '');
    check('rm -r', (await guest.run('rm -r /data/dir')) === '');
    check('the directory is gone', !/^dir$/m.test(await guest.run('ls -1 /data')));
    check('cd and pwd', (await guest.run('cd /data')) === '' && (await guest.run('pwd')) === '/data\n');
    check('relative paths', /note\.txt/.test(await guest.run('ls')) && (await guest.run('cd')) === '');

    const mounts = await guest.run('cat /proc/mounts');
    check('/data is ext4', /^\/dev\/vda \/data ext4 /m.test(mounts) && /^proc \/proc proc /m.test(mounts), mounts);
    check('sync', (await guest.run('sync')) === '');
    check('ps sees init and the shell', /^ +1 root .*\/init$/m.test(await guest.run('ps')));
    check('dmesg', /Linux version/.test(await guest.run('dmesg | head -n 5')));

    const date = await guest.run('date -u +%s');
    check('date is near the host clock', Math.abs(Number(date.trim()) - Date.now() / 1000) < 300, date);

    const cpu = await guest.run('cpubench', benchTimeoutMs);
    check('cpubench', /^cpubench: 10 rounds, checksum 0xc9589fca, \d+\.\d{3} ms\n$/.test(cpu), cpu);
    console.log(`# ${cpu.trim()}`);
    const disk = await guest.run(`diskbench ${diskbenchMiB}`, benchTimeoutMs);
    check('diskbench', /diskbench: OK\n$/.test(disk) && /direct I\/O/.test(disk), disk);
    console.log(`# ${disk.trim().replace(/\n/g, '\n# ')}`);

    check('unknown command', /frobnicate: not found/.test(await guest.run('frobnicate --now')));
    check('its status is 127', (await guest.run('echo $?')) === '127\n');
    check('bad number', /^diskbench: usage/.test(await guest.run('diskbench lots')));
    check('missing file', /^cat: can't open '\/nope': No such file or directory\n$/.test(await guest.run('cat /nope')));
    check('empty line', (await guest.run('')) === '');
    check('comment', (await guest.run('# nothing here')) === '');

    // Input split across writes: the shell must assemble the line.
    const mark = guest.console.length;
    guest.send('ec');
    await new Promise((resolve) => setTimeout(resolve, 300));
    guest.send('ho split');
    await new Promise((resolve) => setTimeout(resolve, 300));
    guest.send(' line\n');
    const end = await guest.waitFor(prompt, mark, commandTimeoutMs);
    check('input in pieces', guest.console.slice(mark, end).includes('\nsplit line\n'));

    // Ctrl-C interrupts the foreground command (the shell has a controlling terminal).
    const sleeping = guest.console.length;
    guest.send("sh -c 'echo sleeping; exec sleep 600'\n");
    await guest.waitFor('\nsleeping\n', sleeping, commandTimeoutMs);
    guest.send('\x03');
    await guest.waitFor(prompt, sleeping, commandTimeoutMs);
    check('Ctrl-C interrupts a command', (await guest.run('echo $?')) === '130\n');

    // e2fsck in the guest, on the unmounted disk.
    await guest.run('umount /data');
    check('e2fsck in the guest', /^status 0$/m.test(await guest.run('e2fsck -fn /dev/vda >/dev/null 2>&1; echo status $?')));
    await guest.run('mount /dev/vda /data');

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
  // panic=-1: restart at once after a panic, whatever the kernel's own PANIC_TIMEOUT (ours is
  // -1; rv32_defconfig's is 0, spin forever).
  const badInitramfs = new Guest({ initramfs: garbage, append: 'console=ttyS0 earlycon=sbi panic=-1' });
  const initramfsStatus = await badInitramfs.waitForExit(bootTimeoutMs);
  // The kernel panics (no init) and restarts at once; -no-reboot exits.
  check('a corrupt initramfs panics and restarts', initramfsStatus !== undefined &&
    badInitramfs.console.includes('Initramfs unpacking failed') && badInitramfs.console.includes('Kernel panic'),
  JSON.stringify(initramfsStatus));
}

const directory = mkdtempSync(path.join(tmpdir(), 'understudy-qemu-'));
try {
  console.log(`# QEMU CPU: ${cpuName} (${cpuModels[cpuName]})${useIcount ? ', -icount shift=0,sleep=off' : ''}; kernel ${files.kernel}`);
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
