/**
 * A real S3 server for tests and benchmarks: a throw-away single-node Ceph
 * cluster (one monitor, one bluestore OSD on a sparse file, a RADOS Gateway)
 * on 127.0.0.1, after ../shared/notes/ceph-up.sh, with everything under a
 * temp dir and every port chosen free. About 11 s to start (short paxos
 * rounds; 17-20 s with Ceph's defaults), ~400 MB RSS.
 *
 * Cleanup is belt and braces: stop() kills every daemon and removes the dir;
 * an 'exit'/signal hook does the same synchronously; and a detached watchdog
 * does it if this process dies without running either (SIGKILL, crash).
 *
 * Reuse: acquireS3Server() shares one cluster per process (refcounted), and
 * attaches to a cluster another process started when SYN3_S3_CLUSTER names
 * its state file, so several test files or a benchmark can share one start. Tests give each case
 * its own bucket, so sharing is safe.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { sleep } from './common.js';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** What another process needs to use a running cluster (the state file's content). */
export interface S3ClusterState {
  dir: string;
  conf: string;
  endpoint: string;
  rgwPort: number;
  region: string;
  credentials: S3Credentials;
}

export interface S3Server extends S3ClusterState {
  /** A client with the cluster user's credentials, path-style, as the target configures it. */
  client(credentials?: S3Credentials): S3Client;
  /** A fresh bucket owned by the cluster user; `name` defaults to a unique one. */
  createBucket(name?: string): Promise<string>;
  /** A bucket quota in bytes, enforced at once (the cluster caches no bucket stats). */
  setBucketQuota(bucket: string, maxBytes: number): Promise<void>;
  /** radosgw-admin against this cluster; returns stdout. */
  admin(args: readonly string[]): Promise<string>;
  /** Writes an S3 credentials file (access_key_id= / secret_access_key= lines), mode 0600 unless told. */
  writeCredentialsFile(file: string, credentials?: S3Credentials, mode?: number): Promise<void>;
  /** Kills the gateway at once (SIGKILL), as a crash or a dropped network would. */
  killGateway(): Promise<void>;
  /** Starts the gateway again and waits until it answers. */
  startGateway(): Promise<void>;
  /** Kills every daemon of the cluster and removes its dir (a no-op for an attached cluster). Never throws. */
  stop(): Promise<void>;
}

export const S3_CLUSTER_ENV = 'SYN3_S3_CLUSTER';
const REGION = 'us-east-1';
const READY_TIMEOUT_MS = 90_000;
// Sparse: only what is written takes room on the host's disk.
const BLOCK_BYTES = 32 * 1024 ** 3;

const TOOLS = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool', 'ceph-authtool', 'ceph'];

/** The first Ceph program that is not installed, if any (tests skip on it outside CI, and fail in CI). */
export function s3ServerMissing(): string | undefined {
  return TOOLS.find((tool) => spawnSync('which', [tool]).status !== 0);
}

/** Starts a cluster of its own; the caller stops it. */
export async function startS3Server(): Promise<S3Server> {
  const missing = s3ServerMissing();
  if (missing) throw new Error(`${missing} is not installed: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd`);
  const dir = await mkdtemp(join(tmpdir(), 'syn3-ceph-'));
  for (const d of ['mon/a', 'osd/0', 'run', 'log', 'pids']) mkdirSync(join(dir, d), { recursive: true });
  startWatchdog(dir);
  const untrack = track(dir);
  try {
    const [monPort, rgwPort] = await freePorts(2);
    const fsid = randomUUID();
    const conf = join(dir, 'ceph.conf');
    writeFileSync(conf, cephConf(dir, fsid, monPort!, rgwPort!));
    const c = ['-c', conf];
    await execa('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, join(dir, 'monmap')]);
    await execa('ceph-authtool', ['--create-keyring', join(dir, 'mon.keyring'), '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
    await execa('ceph-mon', [...c, '--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap'), '--keyring', join(dir, 'mon.keyring')]);
    daemon(dir, 'mon', 'ceph-mon', [...c, '-i', 'a', '-f']);
    const osdUuid = randomUUID();
    const id = (await execa('ceph', [...c, 'osd', 'new', osdUuid], { timeout: 60_000 })).stdout.trim();
    await execa('ceph-osd', [...c, '-i', id, '--mkfs', '--osd-uuid', osdUuid], { timeout: 60_000 });
    daemon(dir, 'osd', 'ceph-osd', [...c, '-i', id, '-f']);
    daemon(dir, 'rgw', 'radosgw', [...c, '-n', 'client.rgw.a', '-f']);
    await waitForGateway(dir, rgwPort!);
    const user = JSON.parse((await execa('radosgw-admin', [...c, 'user', 'create', '--uid=backup', '--display-name=Backup'])).stdout) as {
      keys: Array<{ access_key: string; secret_key: string }>;
    };
    const key = user.keys[0]!;
    const state: S3ClusterState = {
      dir,
      conf,
      endpoint: `http://127.0.0.1:${rgwPort}`,
      rgwPort: rgwPort!,
      region: REGION,
      credentials: { accessKeyId: key.access_key, secretAccessKey: key.secret_key },
    };
    writeFileSync(join(dir, 'state.json'), JSON.stringify(state), { mode: 0o600 });
    return handle(state, async () => {
      await destroy(dir);
      untrack();
    });
  } catch (e) {
    const logs = logTails(dir);
    await destroy(dir);
    untrack();
    throw new Error(`starting Ceph failed: ${(e as Error).message}\n${logs}`, { cause: e });
  }
}

/** Uses a cluster started elsewhere (its state file), without ever stopping it. */
export function attachS3Server(stateFile: string): S3Server {
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as S3ClusterState;
  return handle(state, async () => undefined);
}

let shared: { server: Promise<S3Server>; users: number } | undefined;

/**
 * One cluster for everyone in this process (and the run's shared one if
 * SYN3_S3_CLUSTER is set); release() stops it when the last user is done.
 */
export async function acquireS3Server(): Promise<{ server: S3Server; release: () => Promise<void> }> {
  const stateFile = process.env[S3_CLUSTER_ENV];
  if (stateFile && existsSync(stateFile)) return { server: attachS3Server(stateFile), release: async () => undefined };
  if (!shared) shared = { server: startS3Server(), users: 0 };
  const mine = shared;
  mine.users++;
  let server: S3Server;
  try {
    server = await mine.server;
  } catch (e) {
    if (shared === mine) shared = undefined;
    throw e;
  }
  let released = false;
  return {
    server,
    release: async () => {
      if (released) return;
      released = true;
      if (--mine.users === 0) {
        if (shared === mine) shared = undefined;
        await server.stop();
      }
    },
  };
}

function handle(state: S3ClusterState, stop: () => Promise<void>): S3Server {
  const c = ['-c', state.conf];
  const admin = async (args: readonly string[]): Promise<string> => (await execa('radosgw-admin', [...c, ...args])).stdout;
  // The SDK's notice that its 2027 releases need Node 22 is noise in test output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const client = (credentials: S3Credentials = state.credentials): S3Client =>
    new S3Client({
      endpoint: state.endpoint,
      region: state.region,
      forcePathStyle: true,
      credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  let stopped = false;
  return {
    ...state,
    client,
    admin,
    async createBucket(name = `b-${randomUUID().slice(0, 12)}`) {
      const s3 = client();
      try {
        await s3.send(new CreateBucketCommand({ Bucket: name }));
      } finally {
        s3.destroy();
      }
      return name;
    },
    async setBucketQuota(bucket, maxBytes) {
      await admin(['quota', 'set', '--quota-scope=bucket', `--bucket=${bucket}`, `--max-size=${maxBytes}`]);
      await admin(['quota', 'enable', '--quota-scope=bucket', `--bucket=${bucket}`]);
    },
    async writeCredentialsFile(file, credentials = state.credentials, mode = 0o600) {
      const text = `# S3 credentials\naccess_key_id = ${credentials.accessKeyId}\nsecret_access_key = ${credentials.secretAccessKey}\n`;
      await writeFile(file, text, { mode });
      await chmod(file, mode);
    },
    async killGateway() {
      await killDaemon(state.dir, 'rgw');
    },
    async startGateway() {
      daemon(state.dir, 'rgw', 'radosgw', [...c, '-n', 'client.rgw.a', '-f']);
      await waitForGateway(state.dir, state.rgwPort);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await stop().catch((e: unknown) => console.warn('stopping Ceph:', e));
    },
  };
}

function cephConf(dir: string, fsid: string, monPort: number, rgwPort: number): string {
  return `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
public network = 127.0.0.0/8
cluster network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms mon cluster mode = crc
ms cluster mode = crc
ms service mode = crc
ms mon service mode = crc
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg autoscale mode = off
osd pool default pg num = 8
mon max pg per osd = 1000
# Each osdmap change waits for the next paxos round (1 s by default); radosgw's
# first start makes a dozen of them. Short rounds cut the start from ~20 s.
paxos propose interval = 0.05
paxos min wait = 0.01
run dir = ${dir}/run
log file = ${dir}/log/$name.log
admin socket = ${dir}/run/$name.asok
[mon.a]
mon data = ${dir}/mon/a
[osd]
osd data = ${dir}/osd/$id
osd memory target = 1073741824
osd objectstore = bluestore
# Outside the OSD's data dir, as ceph-up.sh has it.
bluestore block path = ${dir}/osd/$id.block
bluestore block create = true
bluestore block size = ${BLOCK_BYTES}
bluestore fsck on mkfs = false
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${dir}/rgw
rgw bucket quota ttl = 0
rgw user quota bucket sync interval = 0
# Deleted objects' data goes at once (by default after 2 h), so benchmarks that
# upload and delete gigabytes in turn do not fill the OSD.
rgw gc obj min wait = 0
rgw gc processor period = 5
`;
}

function daemon(dir: string, name: string, cmd: string, args: readonly string[]): ChildProcess {
  const out = openSync(join(dir, 'log', `${name}.out`), 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', out, out] });
  closeSync(out);
  if (child.pid === undefined) throw new Error(`${cmd} did not start`);
  writeFileSync(join(dir, 'pids', `${name}.pid`), String(child.pid));
  child.on('error', () => undefined);
  return child;
}

function pidOf(dir: string, name: string): number | undefined {
  try {
    return Number(readFileSync(join(dir, 'pids', `${name}.pid`), 'utf8'));
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers signal 0; it is dead for our purposes.
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function killDaemon(dir: string, name: string): Promise<void> {
  const pid = pidOf(dir, name);
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
  for (let i = 0; i < 200 && alive(pid); i++) await sleep(25);
  rmSync(join(dir, 'pids', `${name}.pid`), { force: true });
}

function killAllSync(dir: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(join(dir, 'pids'));
  } catch {
    return;
  }
  for (const n of names) {
    const pid = Number(readFileSync(join(dir, 'pids', n), 'utf8'));
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

async function destroy(dir: string): Promise<void> {
  let names: string[] = [];
  try {
    names = readdirSync(join(dir, 'pids')).map((n) => n.replace(/\.pid$/, ''));
  } catch {
    // Nothing was started.
  }
  // The gateway first, so no client request lands on a half-dead cluster.
  for (const n of names.sort((a, b) => order(a) - order(b))) await killDaemon(dir, n);
  rmSync(dir, { recursive: true, force: true });
}

function order(name: string): number {
  return ['rgw', 'osd', 'mon'].indexOf(name);
}

// Synchronous last resort for 'exit' and fatal signals (vitest stops workers with SIGTERM).
const live = new Set<string>();
const FATAL: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

function destroyAllSync(): void {
  for (const dir of live) {
    killAllSync(dir);
    rmSync(dir, { recursive: true, force: true });
  }
  live.clear();
}

function onFatal(signal: NodeJS.Signals): void {
  destroyAllSync();
  setHooks(false);
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function setHooks(on: boolean): void {
  const m = on ? 'on' : 'off';
  process[m]('exit', destroyAllSync);
  for (const s of FATAL) process[m](s, onFatal);
}

function track(dir: string): () => void {
  if (live.size === 0) setHooks(true);
  live.add(dir);
  return () => {
    if (live.delete(dir) && live.size === 0) setHooks(false);
  };
}

/**
 * A detached process that outlives a killed parent: once the parent is gone it
 * kills every daemon named in <dir>/pids and removes <dir>; it leaves quietly
 * when <dir> disappears (a normal stop).
 */
function startWatchdog(dir: string): void {
  const code = `
const fs = require('fs'), path = require('path');
const [parent, dir] = process.argv.slice(1);
const pids = path.join(dir, 'pids');
setInterval(() => {
  if (!fs.existsSync(dir)) process.exit(0);
  try { process.kill(Number(parent), 0); return; } catch {}
  for (const n of fs.existsSync(pids) ? fs.readdirSync(pids) : []) {
    try { process.kill(Number(fs.readFileSync(path.join(pids, n), 'utf8')), 'SIGKILL'); } catch {}
  }
  setTimeout(() => { fs.rmSync(dir, { recursive: true, force: true }); process.exit(0); }, 500);
}, 1000);`;
  const child = spawn(process.execPath, ['-e', code, String(process.pid), dir], { detached: true, stdio: 'ignore' });
  child.unref();
}

async function waitForGateway(dir: string, port: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await answers(port)) return;
    const pid = pidOf(dir, 'rgw');
    if (pid === undefined || !alive(pid)) throw new Error('radosgw exited during start');
    await sleep(200);
  }
  throw new Error(`radosgw did not answer on 127.0.0.1:${port} within ${READY_TIMEOUT_MS / 1000} s`);
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', method: 'GET', timeout: 2000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

/** Ports the kernel hands out as free on 127.0.0.1 (all held at once, so they differ). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    return typeof a === 'object' && a ? a.port : 0;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

function logTails(dir: string): string {
  const out: string[] = [];
  for (const f of ['mon.out', 'osd.out', 'rgw.out', 'client.rgw.a.log']) {
    try {
      const text = readFileSync(join(dir, 'log', f), 'utf8')
        .trimEnd()
        .split('\n')
        .slice(-8)
        .join('\n');
      if (text) out.push(`--- ${f}\n${text}`);
    } catch {
      // No such log.
    }
  }
  return out.join('\n');
}
