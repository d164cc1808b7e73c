import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration tests attach loop devices and mount file systems: one file at a time
    // keeps a 2-core CI machine from thrashing and loop numbers from racing.
    fileParallelism: false,
    reporters: ['default'],
  },
});
