// A Flotilla client in JavaScript: submit a task, wait for its result.
//
//   node client.js [addr] [a] [b]      submits js.add [a, b] and prints the sum
'use strict';

const crypto = require('node:crypto');
const { queueClient, call } = require('./flotilla');

/** Submit `name` with JSON `args`; resolves with the task id. */
async function submit(client, name, args, options = {}) {
  const reply = await call(client, 'Submit', {
    tasks: [
      {
        name,
        args: Buffer.from(JSON.stringify(args)),
        // A key per request: a retried submit never makes a second task.
        idempotency_key: options.idempotencyKey || crypto.randomUUID(),
        max_retries: options.maxRetries || 0,
        headers: options.headers || {},
      },
    ],
  });
  return reply.results[0].id;
}

/** Wait (server-side, one stream) for the task to finish; resolves with its TaskInfo. */
function wait(client, id, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const stream = client.WaitResults({ ids: [id], timeout_ms: timeoutMs });
    let info = null;
    stream.on('data', (t) => {
      info = t;
    });
    stream.on('error', reject);
    stream.on('end', () => (info ? resolve(info) : reject(new Error(`no result for task ${id}`))));
  });
}

/** The task's result (parsed JSON), or a thrown Error with its failure message. */
function resultOf(info) {
  if (info.state === 'TASK_STATE_SUCCEEDED') return JSON.parse(info.result.toString('utf8'));
  throw new Error(`task ${info.id} ${info.state}: ${info.error}`);
}

module.exports = { submit, wait, resultOf };

if (require.main === module) {
  const [addr = '127.0.0.1:7000', a = '2', b = '3'] = process.argv.slice(2);
  const client = queueClient(addr);
  (async () => {
    const id = await submit(client, 'js.add', [Number(a), Number(b)]);
    console.log(resultOf(await wait(client, id)));
  })().catch((err) => {
    console.error(err.message);
    process.exit(1);
  });
}
