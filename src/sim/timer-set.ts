/**
 * Every timer the simulator sets goes through one TimerSet, so `close()` can clear them all and the process can exit:
 * a forgotten retention timer of one hour would otherwise keep a test runner alive.
 */
export class TimerSet {
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  /** Runs `task` after `ms`; returns a function that cancels it. After close() nothing is scheduled. */
  after(ms: number, task: () => void): () => void {
    if (this.closed) return () => undefined;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      task();
    }, ms);
    this.timers.add(timer);
    return () => {
      clearTimeout(timer);
      this.timers.delete(timer);
    };
  }

  /** A promise that resolves after `ms`, or at once when the set is closed. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed) resolve();
      else this.after(ms, resolve);
    });
  }

  get size(): number {
    return this.timers.size;
  }

  clearAll(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
