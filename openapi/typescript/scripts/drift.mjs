// Fails when src/schema.d.ts is not what `npm run generate` makes from ../openapi.json today:
// regenerates into a temporary directory with the pinned openapi-typescript and compares bytes.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(dirname(createRequire(import.meta.url).resolve("openapi-typescript/package.json")), "bin", "cli.js");
const committed = join(root, "src", "schema.d.ts");
const dir = mkdtempSync(join(tmpdir(), "resonance-schema-"));
const fresh = join(dir, "schema.d.ts");

try {
  const run = spawnSync(process.execPath, [cli, "../openapi.json", "-o", fresh], { cwd: root, encoding: "utf8" });
  if (run.status !== 0) {
    process.stderr.write(run.stdout + run.stderr);
    console.error("drift: openapi-typescript failed on ../openapi.json");
    process.exit(1);
  }
  const want = readFileSync(fresh, "utf8");
  let have = "";
  try {
    have = readFileSync(committed, "utf8");
  } catch {
    // missing: reported as drift below
  }
  if (have !== want) {
    const diff = spawnSync("diff", ["-u", committed, fresh], { encoding: "utf8" });
    process.stdout.write((diff.stdout ?? "").split("\n").slice(0, 80).join("\n") + "\n");
    console.error("drift: src/schema.d.ts is stale; run `npm run generate` in openapi/typescript and commit it");
    process.exit(1);
  }
  console.log("drift: src/schema.d.ts matches ../openapi.json");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
