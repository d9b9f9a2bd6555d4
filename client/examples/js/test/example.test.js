// The JavaScript example against a real node: the worker and the client use nothing but the
// .proto files. Needs FLOTILLA_NODE_BIN (the harness, tests/tests/sdk/t20_js.rs, sets it).
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const { queueClient, call } = require('../flotilla');
const { runWorker } = require('../worker');
const { submit, wait, resultOf } = require('../client');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startNode() {
  const bin = process.env.FLOTILLA_NODE_BIN;
  assert.ok(bin, 'FLOTILLA_NODE_BIN must name the node binary');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-js-'));
  const addr = `127.0.0.1:${await freePort()}`;
  // No workers of its own: every js.* task runs in the JavaScript worker.
  const child = spawn(bin, ['--listen', addr, '--data-dir', dir, '--workers', '0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => {
    log += d;
  });
  const client = queueClient(addr);
  for (let i = 0; i < 600; i += 1) {
    try {
      const s = await call(client, 'ClusterStatus', {});
      if (s.leader_id && s.leader_id === s.node_id) return { child, addr, client, dir };
    } catch (_) {
      // not up yet
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`node did not become ready:\n${log}`);
}

test('a JavaScript worker runs tasks a JavaScript client submits', async (t) => {
  const node = await startNode();
  t.after(() => {
    node.child.kill('SIGKILL');
    fs.rmSync(node.dir, { recursive: true, force: true });
  });
  const worker = runWorker(node.addr, { name: 'js-test', concurrency: 2 });
  worker.done.catch(() => {});
  await worker.ready;

  const ids = [];
  for (let i = 0; i < 5; i += 1) ids.push(await submit(node.client, 'js.add', [i, 10], { headers: { 'x-n': String(i) } }));
  const sums = [];
  for (const id of ids) sums.push(resultOf(await wait(node.client, id)));
  assert.deepStrictEqual(sums, [10, 11, 12, 13, 14]);

  const failed = await wait(node.client, await submit(node.client, 'js.fail', { why: 'test' }));
  assert.strictEqual(failed.state, 'TASK_STATE_DEAD');
  assert.match(failed.error, /failed on purpose/);

  // The catalogue shows the worker where it is connected.
  const names = await call(node.client, 'ListTaskNames', {});
  const add = names.tasks.find((n) => n.name === 'js.add');
  assert.strictEqual(add.workers[0].name, 'js-test');
  assert.strictEqual(add.workers[0].concurrency, 2);

  worker.drain();
  const counts = await worker.done;
  assert.strictEqual(counts.succeeded, 5);
  assert.strictEqual(counts.acked, 6);
});
