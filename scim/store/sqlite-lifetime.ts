// better-sqlite3 12 wraps Database and Statement in node::ObjectWrap. Since Node 24.19 the ObjectWrap
// destructor asserts that a Node environment is current, which it is not when V8 collects such an
// object from an idle-time GC task or after the environment is gone: the process aborts (SIGABRT).
// better-sqlite3 13 fixes that but needs Node 22, and rolegate supports Node 20.19. So no Database or
// Statement of ours is ever left to the garbage collector: each is kept here for the process's life,
// and Node's own environment cleanup, which runs while the environment still exists, disposes them.
// (A store prepares a bounded set of statements, cached by their SQL, so this does not grow per request.)

const kept: object[] = [];

/** Returns `native` after making sure it stays reachable until the process exits. */
export function keepForProcessLife<T extends object>(native: T): T {
  kept.push(native);
  return native;
}
