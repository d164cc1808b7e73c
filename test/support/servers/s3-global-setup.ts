/**
 * Optional vitest globalSetup: one Ceph cluster for the whole run, shared by
 * every test file that calls acquireS3Server() (they attach through the state
 * file named in SYN3_S3_CLUSTER and never stop it); stopped after the run.
 * Without it each such test file starts its own (about 11 s).
 *   test: { globalSetup: ['test/support/servers/s3-global-setup.ts'] }
 * With no Ceph installed it does nothing, and the test files decide (skip, or fail in CI).
 */
import { join } from 'node:path';
import { S3_CLUSTER_ENV, s3ServerMissing, startS3Server } from './s3.js';

export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  if (s3ServerMissing()) return undefined;
  const server = await startS3Server();
  process.env[S3_CLUSTER_ENV] = join(server.dir, 'state.json');
  return async () => {
    delete process.env[S3_CLUSTER_ENV];
    await server.stop();
  };
}
