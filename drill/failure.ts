/** A drill check or phase that failed: what, and the serial log to read. */
export class DrillFailure extends Error {
  constructor(
    message: string,
    readonly serialLog?: string,
  ) {
    super(message);
    this.name = 'DrillFailure';
  }
}
