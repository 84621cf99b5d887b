// run.mjs runs the client cases in cases/*.mjs against a running vlm
// server and prints one JSON line per case:
//   {"name": "openai.chat", "needs": [], "ok": true, "ms": 120}
//   {"name": "...", "needs": ["schema"], "ok": false, "error": "..."}
// openai/jsclients_test.go starts the server, runs this and reads the
// lines. By hand: VLM_BASE_URL=http://127.0.0.1:8080/v1 VLM_API_KEY=...
// node run.mjs [regexp of case names]  (see cases/env.mjs for the rest).
//
// A case is {name, needs, run}: run(env) throws (node:assert) on failure;
// needs names server features that are not merged yet (the Go test's
// pendingFeatures says which): such a case may fail, and must be
// unmarked once it passes.
import { env } from './cases/env.mjs';
import openaiCases from './cases/openai.mjs';
import aisdkCases from './cases/aisdk.mjs';
import langchainCases from './cases/langchain.mjs';

const all = [...openaiCases, ...aisdkCases, ...langchainCases];
const only = process.argv[2] ? new RegExp(process.argv[2]) : null;
const names = new Set();
for (const c of all) {
  if (names.has(c.name)) throw new Error(`two cases named ${c.name}`);
  names.add(c.name);
  if (only && !only.test(c.name)) continue;
  const start = Date.now();
  const line = { name: c.name, needs: c.needs ?? [] };
  try {
    await c.run(env);
    line.ok = true;
  } catch (e) {
    line.ok = false;
    line.error = String(e?.stack ?? e).slice(0, 4000);
  }
  line.ms = Date.now() - start;
  process.stdout.write(JSON.stringify(line) + '\n');
}
