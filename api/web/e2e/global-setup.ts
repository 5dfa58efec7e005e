// Starts `target/debug/attendance-api` in embedded mode (SQLite, files, in-process
// worker) in a temporary folder on a free port, waits for its URL, and hands the URL
// and the admin key it wrote to the tests through the environment.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../../..');

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => ok(port));
    });
  });
}

/** Returns the teardown: the server stopped, its folder removed (kept with E2E_KEEP=1). */
export default async function globalSetup(): Promise<() => Promise<void>> {
  const bin = process.env.ATTENDANCE_API_BIN ?? join(REPO, 'target/debug/attendance-api');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run cargo build --workspace first`);
  const modelDir = process.env.MODEL_DIR ?? join(REPO, 'data/models');
  if (!existsSync(modelDir)) throw new Error(`no face models at ${modelDir}: set MODEL_DIR (scripts/test.sh fetches them)`);

  const dir = mkdtempSync(join(tmpdir(), 'attendance-web-'));
  const port = await freePort();
  const log = join(dir, 'api.log');
  const out = openSync(log, 'w');
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const v of ['DATABASE_URL', 'QUEUE_URL', 'STORAGE_URL', 'FACE_MODEL', 'DETECTOR', 'CORS_ORIGINS']) delete env[v];
  Object.assign(env, {
    BIND: `127.0.0.1:${port}`,
    DATA_DIR: join(dir, 'data'),
    DATABASE_URL: `sqlite://${join(dir, 'attendance.db')}?mode=rwc`,
    STORAGE_URL: `file://${join(dir, 'blobs')}`,
    QUEUE_URL: 'embedded',
    MODEL_DIR: modelDir,
    DEVICE: 'cpu',
    RUST_LOG: 'info',
  });
  const child = spawn(bin, [], { cwd: dir, env, stdio: ['ignore', out, out], detached: false });

  const deadline = Date.now() + 120_000;
  let base: string | undefined;
  while (!base) {
    if (child.exitCode !== null) throw new Error(`attendance-api exited with ${child.exitCode}:\n${readFileSync(log, 'utf8')}`);
    const m = /listening on (http:\/\/\S+)/.exec(readFileSync(log, 'utf8'));
    if (m) base = m[1];
    else if (Date.now() > deadline) throw new Error(`attendance-api printed no URL:\n${readFileSync(log, 'utf8')}`);
    else await new Promise((r) => setTimeout(r, 200));
  }
  const adminKey = readFileSync(join(dir, 'data/admin.key'), 'utf8').trim();
  process.env.E2E_BASE_URL = base;
  process.env.E2E_ADMIN_KEY = adminKey;
  process.env.E2E_API_LOG = log;
  return async () => {
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    if (process.env.E2E_KEEP) console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  };
}
