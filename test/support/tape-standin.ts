/**
 * Moved to test/support/standins/tape.ts (the STAND-IN tape drive). This
 * re-export keeps test/integration/network-targets.test.ts working until its
 * import is changed; then this file goes.
 */
export { createTapeStandIn, type DriveState, type TapeStandIn, type TapeStandInOptions } from './standins/tape.js';
