// Flotilla's gRPC services for JavaScript, loaded at run time from the repository's .proto
// files (proto/protos) with @grpc/proto-loader: no generated code, nothing but the contract.
'use strict';

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = path.join(__dirname, '..', '..', '..', 'proto', 'protos');

const definition = protoLoader.loadSync(['flotilla/v1/queue.proto', 'flotilla/v1/worker.proto'], {
  includeDirs: [PROTO_DIR],
  // Field names as in the .proto (task_id), 64-bit integers as JS numbers (task ids fit),
  // enums as their names, defaults filled in, and the name of the field a oneof holds.
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});
const v1 = grpc.loadPackageDefinition(definition).flotilla.v1;

/** A QueueService client (submit, get, wait) for a node at `addr` ("127.0.0.1:7000"). */
function queueClient(addr) {
  return new v1.QueueService(addr, grpc.credentials.createInsecure());
}

/** A WorkerService client for a node at `addr`. */
function workerClient(addr) {
  return new v1.WorkerService(addr, grpc.credentials.createInsecure());
}

/** `client.method(request)` as a promise. */
function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

module.exports = { grpc, v1, queueClient, workerClient, call };
