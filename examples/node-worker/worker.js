// A worker in Node.js, built only from our contract (proto/worker_abstraction/worker.proto): it registers
// with the registry, heartbeats, serves WorkerService's ExecuteTask, StreamTaskStatus, GetWorkerInfo and
// CancelTask, and runs one capability, `word_count`. OpenTaskChannel (the fast path) is left out: the
// orchestrator asks for it, hears UNIMPLEMENTED, and uses ExecuteTask + StreamTaskStatus instead.
//
//   node worker.js --registry 127.0.0.1:50051 [--port 0] [--name node-worker] [--version 1.0.0]
//
// --version is the capability's semantic version (ToolCapability.version): callers may ask for a range
// (`wa submit word_count@^2`). A task's session key (Task.session_key, with session_moved when its earlier
// worker is gone) comes back in the output, with the counts this worker keeps per key: the state a key's
// tasks find when they all come to one worker.
//
// It prints one line once it serves: `worker WORKER_ID listening on HOST:PORT`.
"use strict";

const path = require("path");
const crypto = require("crypto");
const grpc = require("@grpc/grpc-js");
const loader = require("@grpc/proto-loader");

const PROTO = path.resolve(__dirname, "..", "..", "proto", "worker_abstraction", "worker.proto");
const contract = grpc.loadPackageDefinition(
  loader.loadSync(PROTO, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true })
).worker_abstraction;

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, item, index, all) => {
    if (item.startsWith("--")) pairs.push([item.slice(2), all[index + 1]]);
    return pairs;
  }, [])
);
const registryAddress = args.registry || "127.0.0.1:50051";
const workerId = `node-${crypto.randomUUID()}`;
const name = args.name || "node-worker";
const capabilityVersion = args.version || "1.0.0";

// The capability: what the registry lists, and what runs it.
const CAPABILITIES = [
  {
    name: "word_count",
    description: "Count the words of a text (served by a Node.js worker)",
    parameters: [{ name: "text", type: "string", description: "the text", required: true }],
    version: capabilityVersion,
  },
];
const perSession = new Map(); // session key -> words counted for it here (what a stateful worker keeps)
function wordCount(params, request) {
  const text = params.text;
  if (typeof text !== "string") throw new TypeError("text must be a string");
  const words = text.split(/\s+/).filter((word) => word.length > 0);
  const output = { words: words.length, language: "node" };
  if (args.version) output.version = capabilityVersion;
  if (request.session_key) {
    const total = (perSession.get(request.session_key) || 0) + words.length;
    perSession.set(request.session_key, total);
    Object.assign(output, { session_key: request.session_key, session_total: total,
                            session_moved: Boolean(request.session_moved), worker_id: workerId });
  }
  return output;
}

// Each task's update log, numbered 1, 2, 3, ... (TaskResult.sequence): StreamTaskStatus replays it.
const tasks = new Map();
function now() {
  const ms = Date.now();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}
function append(task, status, fields = {}) {
  const update = {
    task_id: task.id, status, completed_at: now(), sequence: task.log.length + 1,
    worker_id: workerId, attempt: task.attempt, ...fields,
  };
  task.log.push(update);
  for (const listener of task.listeners) listener(update);
  return update;
}
const TERMINAL = new Set(["TASK_STATUS_COMPLETED", "TASK_STATUS_FAILED", "TASK_STATUS_CANCELED"]);

function run(task, params, request) {
  setImmediate(() => {
    append(task, "TASK_STATUS_RUNNING");
    if (task.canceled) return append(task, "TASK_STATUS_CANCELED", { error_message: task.canceled });
    try {
      const output = wordCount(params, request);
      append(task, "TASK_STATUS_COMPLETED", { output_json: JSON.stringify(output), progress: 1 });
    } catch (error) {
      append(task, "TASK_STATUS_FAILED", {
        error_message: `${error.name}: ${error.message}`,
        failure: { type: error.name, message: error.message, retryable: false, origin: "FAILURE_ORIGIN_HANDLER" },
      });
    }
  });
}

const service = {
  ExecuteTask(call, callback) {
    const request = call.request.task;
    if (!request || !request.task_id) {
      return callback({ code: grpc.status.INVALID_ARGUMENT, details: "task.task_id is empty; give every task an id" });
    }
    const known = CAPABILITIES.find((c) => c.name === request.capability_name);
    let params = {};
    try {
      for (const p of request.parameters) params[p.key] = JSON.parse(p.value_json);
    } catch (error) {
      return callback(null, { task_id: request.task_id, accepted: false, message: `bad parameters: ${error.message}`,
                              reject_reason: "REJECT_REASON_INVALID_TASK" });
    }
    if (!known) {
      return callback(null, { task_id: request.task_id, accepted: false,
                              message: `unknown capability ${request.capability_name}`,
                              reject_reason: "REJECT_REASON_INVALID_TASK" });
    }
    const task = { id: request.task_id, attempt: request.attempt || 0, log: [], listeners: new Set(), canceled: "" };
    tasks.set(task.id, task);
    append(task, "TASK_STATUS_PENDING");
    run(task, params, request);
    callback(null, { task_id: task.id, accepted: true });
  },

  StreamTaskStatus(call) {
    const task = tasks.get(call.request.task_id);
    if (!task) {
      call.emit("error", { code: grpc.status.NOT_FOUND, details: `task ${call.request.task_id} is unknown` });
      return;
    }
    const after = Number(call.request.after_sequence || 0);
    let position = after > 0 || call.request.from_start ? after : task.log.length - 1;
    const send = (update) => {
      call.write({ result: update });
      if (TERMINAL.has(update.status)) {
        task.listeners.delete(send);
        call.end();
      }
    };
    for (; position < task.log.length; position++) send(task.log[position]);
    if (!TERMINAL.has(task.log[task.log.length - 1].status)) task.listeners.add(send);
    call.on("cancelled", () => task.listeners.delete(send));
  },

  GetWorkerInfo(call, callback) {
    callback(null, info());
  },

  CancelTask(call, callback) {
    const task = tasks.get(call.request.task_id);
    if (!task) return callback({ code: grpc.status.NOT_FOUND, details: `task ${call.request.task_id} is unknown` });
    const status = task.log[task.log.length - 1].status;
    if (TERMINAL.has(status)) return callback(null, { task_id: task.id, canceled: false, status });
    task.canceled = call.request.reason || "canceled on request";
    callback(null, { task_id: task.id, canceled: true, status, message: "canceling" });
  },
};

let address = "";
function info() {
  return { worker_id: workerId, name, version: "1.0.0", address, capabilities: CAPABILITIES, tags: ["node"] };
}

const server = new grpc.Server();
server.addService(contract.WorkerService.service, service);
server.bindAsync(`127.0.0.1:${args.port || 0}`, grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  address = `127.0.0.1:${port}`;
  const registry = new contract.RegistryService(registryAddress, grpc.credentials.createInsecure());
  const register = (then) =>
    registry.RegisterWorker({ worker_info: info() }, (failure, answer) => {
      if (failure) return setTimeout(() => register(then), 500);
      then(answer);
    });
  register((answer) => {
    console.log(`worker ${workerId} listening on ${address}`);
    const every = Math.max(100, (answer.heartbeat_interval_seconds || 1) * 1000);
    setInterval(() => {
      const load = [...tasks.values()].filter((t) => !TERMINAL.has(t.log[t.log.length - 1].status)).length;
      registry.WorkerHeartbeat({ worker_id: workerId, current_load: load }, (failure, beat) => {
        if (!failure && (beat.must_register || !beat.success)) register(() => {});
      });
    }, every);
  });
});

const stop = () => {
  const registry = new contract.RegistryService(registryAddress, grpc.credentials.createInsecure());
  registry.DeregisterWorker({ worker_id: workerId }, () => server.tryShutdown(() => process.exit(0)));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
