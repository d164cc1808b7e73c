/** A machine's table of steps (state name → the actor that does it), read both ways. */
export function namesOf<T extends Record<string, string>>(table: T): Array<keyof T & string> {
  return Object.keys(table) as Array<keyof T & string>;
}

/** The step each actor does: the table, inverted. */
export function stepOfActor<T extends Record<string, string>>(table: T): Record<T[keyof T], keyof T & string> {
  return Object.fromEntries(Object.entries(table).map(([step, actor]) => [actor, step])) as Record<T[keyof T], keyof T & string>;
}
