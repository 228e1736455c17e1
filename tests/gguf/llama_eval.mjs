// Loads GGUF files with the llama.cpp that node-llama-cpp ships and writes, for each, the
// next-token probability of every vocabulary entry after every prefix of the given token ids
// (teacher forcing, LlamaContextSequence.controlledEvaluate). One process for all files: start-up
// dominates (node-llama-cpp loads its native addon once).
//   node llama_eval.mjs NPM_DIR JOBS.json
// JOBS.json: [{"file": "a.gguf", "ids": [1, 5, ...], "vocab": N, "out": "a.probs", "texts": [...]}, ...].
// Each out gets ids.length x N float32 values (little-endian), or a file "<out>.error" with the load
// error; with "texts", "<out>.tokens.json" gets llama.cpp's ids of each text (no BOS/EOS added,
// special-token text not parsed); an empty "ids" only tokenizes.
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const [npmDir, jobsPath] = process.argv.slice(2);
const {getLlama, LlamaLogLevel} = await import(
  pathToFileURL(path.join(npmDir, "node_modules/node-llama-cpp/dist/index.js")).href);
// llama.cpp's own log lines, so that a load failure is reported with llama.cpp's reason.
let log = [];
const llama = await getLlama({
  gpu: false, build: "never", logLevel: LlamaLogLevel.warn, progressLogs: false,
  logger: (level, message) => { log.push(message.trimEnd()); if (log.length > 40) log.shift(); },
});
const jobs = JSON.parse(fs.readFileSync(jobsPath, "utf8"));
for (const job of jobs) {
  let model, context;
  log = [];
  try {
    // No memory-safety simulation: it loads every file a second time just to estimate its needs.
    model = await llama.loadModel({modelPath: job.file, gpuLayers: 0, ignoreMemorySafetyChecks: true});
    if (job.texts)
      fs.writeFileSync(job.out + ".tokens.json", JSON.stringify(job.texts.map((t) => Array.from(model.tokenize(t, false)))));
    if (job.ids.length === 0) continue;
    context = await model.createContext({
      contextSize: Math.max(32, job.ids.length + 1), batchSize: 64, threads: 2, ignoreMemorySafetyChecks: true});
    const seq = context.getSequence();
    const steps = await seq.controlledEvaluate(job.ids.map((t) => [t, {generateNext: {probabilities: true}}]));
    const vocab = job.vocab;
    const out = new Float32Array(job.ids.length * vocab);
    steps.forEach((s, i) => {
      for (const [token, p] of s.next.probabilities) out[i * vocab + token] = p;
    });
    fs.writeFileSync(job.out, Buffer.from(out.buffer));
  } catch (e) {
    fs.writeFileSync(job.out + ".error", String(e && e.message ? e.message : e) + "\n" + log.join("\n"));
  } finally {
    if (context) await context.dispose();
    if (model) await model.dispose();
  }
}
await llama.dispose();
