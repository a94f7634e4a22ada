/**
 * A client process for tests that must run their client elsewhere (in another network
 * namespace, with `ip netns exec`): ONE keep-alive connection to HOST:PORT, COUNT requests
 * alternating PUT and GET, each answer checked. It prints "answered N" after each answer, then
 * "done" and exits 0; anything wrong (a reset, a wrong answer, no answer) is one line
 * "error: ..." and status 1.
 *
 *   node dist/bench/http-client-main.js HOST PORT COUNT
 */
import { KeepAliveClient } from '../src/host/network/http-client.js';

const [host, portText, countText] = process.argv.slice(2);
const answerTimeoutMs = 60_000;

async function main(): Promise<void> {
  const client = await KeepAliveClient.connect(Number(portText), host);
  const stored = new Map<string, Buffer>();
  for (let index = 0; index < Number(countText); index++) {
    const name = `file-${Math.floor(index / 2) % 7}`;
    if (index % 2 === 0) {
      const body = Buffer.from(`request ${index}: ${'y'.repeat((index * 97) % 3000)}`);
      const answer = await client.request('PUT', `/${name}`, body, answerTimeoutMs);
      if (answer.status !== 200) throw new Error(`PUT /${name}: status ${answer.status}`);
      stored.set(name, body);
    } else {
      const answer = await client.request('GET', `/${name}`, undefined, answerTimeoutMs);
      if (answer.status !== 200 || !answer.body.equals(stored.get(name)!)) throw new Error(`GET /${name}: status ${answer.status}, ${answer.body.length} bytes`);
    }
    process.stdout.write(`answered ${index + 1}\n`);
  }
  if (client.lost !== undefined) throw new Error(`the connection was lost: ${client.lost}`);
  client.close();
  process.stdout.write('done\n');
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stdout.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
