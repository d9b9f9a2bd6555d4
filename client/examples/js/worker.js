// A Flotilla worker in JavaScript: one WorkerService.Session stream (docs/WORKERS.md).
//
//   node worker.js [addr]      runs `js.add` (args [a, b] -> a + b) and `js.fail` until SIGTERM
//
// The sequence: Hello, then the node's Welcome; Tasks come in batches, each answered with a
// Result (success, failure or released); the node acks each result once it is committed;
// every Ping gets its Pong; on SIGTERM the worker sends Drain, answers what it holds, and the
// node closes the stream with Drained.
'use strict';

const os = require('node:os');
const { workerClient } = require('./flotilla');

/** Handlers by task name: JSON args in, JSON-able result out; a throw fails the attempt. */
const HANDLERS = {
  'js.add': ([a, b]) => a + b,
  'js.fail': (args) => {
    const err = new Error(`failed on purpose: ${JSON.stringify(args)}`);
    err.retryable = false;
    throw err;
  },
};

/**
 * Run a worker against the node at `addr` until it drains. Resolves with a summary when the
 * node closes the stream.
 */
function runWorker(addr, { name = `js-${os.hostname()}-${process.pid}`, concurrency = 4, handlers = HANDLERS, log = () => {} } = {}) {
  const stream = workerClient(addr).Session();
  const counts = { succeeded: 0, failed: 0, acked: 0 };
  let draining = false;
  let welcomed;
  const ready = new Promise((resolve) => {
    welcomed = resolve;
  });

  const send = (msg) => stream.write(msg);
  const answer = async (task) => {
    const handler = handlers[task.name];
    let outcome;
    try {
      if (draining) {
        outcome = { released: {} };
      } else if (!handler) {
        throw Object.assign(new Error(`no handler for ${task.name}`), { retryable: false });
      } else {
        const args = task.args.length ? JSON.parse(task.args.toString('utf8')) : null;
        const result = await handler(args, task);
        outcome = { success: Buffer.from(JSON.stringify(result ?? null)) };
        counts.succeeded += 1;
      }
    } catch (err) {
      counts.failed += 1;
      outcome = {
        failure: {
          message: String(err && err.message ? err.message : err),
          retryable: err && err.retryable !== undefined ? Boolean(err.retryable) : true,
          retry_delay_ms: err && err.retryDelayMs ? err.retryDelayMs : 0,
          kind: err && err.name ? err.name : 'Error',
        },
      };
    }
    send({ results: { results: [{ task_id: task.task_id, attempt: task.attempt, ...outcome }] } });
  };

  const done = new Promise((resolve, reject) => {
    stream.on('data', (msg) => {
      switch (msg.msg) {
        case 'welcome':
          log(`connected to node ${msg.welcome.node_id} (session ${msg.welcome.session})`);
          welcomed(msg.welcome);
          break;
        case 'tasks':
          for (const task of msg.tasks.tasks) answer(task);
          break;
        case 'acks':
          counts.acked += msg.acks.acks.length;
          break;
        case 'ping':
          send({ pong: { nonce: msg.ping.nonce } });
          break;
        case 'abort':
          log(`abort ${msg.abort.task_id}/${msg.abort.attempt}: ${msg.abort.reason}`);
          break;
        case 'drained':
          stream.end();
          break;
        case 'error':
          log(`node refused: ${msg.error.message}`);
          break;
        default:
          break;
      }
    });
    stream.on('error', (err) => (draining ? resolve(counts) : reject(err)));
    stream.on('end', () => resolve(counts));
  });

  send({
    hello: {
      name,
      queues: ['default'],
      tasks: Object.keys(handlers).map((n) => ({ name: n, queue: '' })),
      concurrency,
      resume: [],
      protocol_version: 1,
      agent: `flotilla-js-example node/${process.versions.node}`,
    },
  });

  return {
    /** Resolves with the Welcome: the worker's task names are declared from then on. */
    ready,
    done,
    counts,
    /** Ask to drain: no more tasks; resolves `done` once the node says Drained. */
    drain() {
      draining = true;
      send({ drain: {} });
    },
  };
}

module.exports = { runWorker, HANDLERS };

if (require.main === module) {
  const addr = process.argv[2] || '127.0.0.1:7000';
  const worker = runWorker(addr, { log: (m) => console.log(m) });
  process.on('SIGTERM', () => worker.drain());
  process.on('SIGINT', () => worker.drain());
  worker.done.then(
    (counts) => console.log('drained', counts),
    (err) => {
      console.error(err.message);
      process.exit(1);
    },
  );
}
