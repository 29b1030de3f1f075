// A caller in Node.js, built only from our contract: it submits a task to the orchestrator daemon
// (OrchestratorService.SubmitTask), follows it (WatchTask) and prints each status and the output.
//
//   node client.js --orchestrator 127.0.0.1:50052 --capability word_count --param text='"a b c"'
//
// Each --param is KEY=JSON. --version RANGE asks for capability versions in a range (e.g. ^2), and
// --session-key KEY sends the task to the worker its key's earlier tasks went to. Exits 0 when the task
// completed, 1 otherwise.
"use strict";

const path = require("path");
const grpc = require("@grpc/grpc-js");
const loader = require("@grpc/proto-loader");

const PROTO = path.resolve(__dirname, "..", "..", "proto", "worker_abstraction", "worker.proto");
const contract = grpc.loadPackageDefinition(
  loader.loadSync(PROTO, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true })
).worker_abstraction;

const argv = process.argv.slice(2);
const options = { orchestrator: "127.0.0.1:50052", capability: "word_count", params: [] };
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, "");
  if (key === "param") options.params.push(argv[i + 1]);
  else options[key] = argv[i + 1];
}
const parameters = options.params.map((pair) => {
  const at = pair.indexOf("=");
  return { key: pair.slice(0, at), value_json: pair.slice(at + 1) };
});

const daemon = new contract.OrchestratorService(options.orchestrator, grpc.credentials.createInsecure());
const request = {
  task: { capability_name: options.capability, parameters },
  version: options.version || "",
  session_key: options["session-key"] || "",
};
daemon.SubmitTask(request, (error, submitted) => {
  if (error) {
    console.error(`refused: ${error.code} ${error.details}`);
    process.exit(2);
  }
  console.log(`task ${submitted.task_id}`);
  const watch = daemon.WatchTask({ task_id: submitted.task_id });
  watch.on("data", (update) => {
    console.log(update.status.replace("TASK_STATUS_", ""));
    if (update.status === "TASK_STATUS_COMPLETED") {
      console.log(update.output_json);
      process.exit(0);
    }
    if (update.status === "TASK_STATUS_FAILED" || update.status === "TASK_STATUS_CANCELED") {
      console.log(update.error_message);
      process.exit(1);
    }
  });
  watch.on("error", (failure) => {
    console.error(`watch ended: ${failure.code} ${failure.details}`);
    process.exit(2);
  });
});
