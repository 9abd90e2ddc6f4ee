// Calls the app's endpoints with the official JS client, as a course page's own script would.
//
//   node tests/js/call.mjs < calls.json
//
// stdin: {"url": "http://127.0.0.1:7860/", "calls": [{"endpoint": "/mae_reconstruct", "data": [...] or {...}}]}.
// In "data", {"$file": "<local path>"} stands for handle_file(path) and {"$number": "NaN"} for that JS number, which
// JSON cannot hold. stdout: one JSON line per call, {"ok": true, "data": [...]} or {"ok": false, "error": "<message>"}.
import { Client, handle_file } from "@gradio/client";

function revive(value) {
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === "object") {
    if ("$file" in value) return handle_file(value.$file);
    if ("$number" in value) return Number(value.$number);
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, revive(item)]));
  }
  return value;
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { url, calls } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const app = await Client.connect(url);
for (const call of calls) {
  let line;
  try {
    const result = await app.predict(call.endpoint, revive(call.data));
    line = { ok: true, data: result.data };
  } catch (error) {
    line = { ok: false, error: String(error?.message ?? error) };
  }
  process.stdout.write(JSON.stringify(line) + "\n");
}
process.exit(0);
